# TSM: 3D DenseNet-121 over 3 slices resampled to 2 mm, whole-slice channel shifts.
_base_ = [
    "../_base_/models/faster_rcnn_densenet.py",
    "../_base_/datasets/deeplesion.py",
    "../_base_/schedules/schedule_20e.py",
    "../_base_/default_runtime.py",
]
num_slices = 3
interpolate = True
model = dict(backbone=dict(conv="tsm", num_slices=num_slices),
             test_cfg=dict(rcnn=dict(score_thr=5e-5)))  # the published threshold
train_dataloader = dict(dataset=dict(num_slices=num_slices, interpolate=interpolate))
val_dataloader = dict(dataset=dict(num_slices=num_slices, interpolate=interpolate))
test_dataloader = dict(dataset=dict(num_slices=num_slices, interpolate=interpolate))
# The published 3D backbones use SyncBN; mmengine converts the BatchNorms when training on N GPUs.
sync_bn = "torch"
# the published total batch (4 GPUs) for lr 0.02: tools/train.py --auto-scale-lr scales from it
auto_scale_lr = dict(enable=False, base_batch_size=8)
