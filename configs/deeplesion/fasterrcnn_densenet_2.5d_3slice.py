# 2.5D baseline: the 3 slices are the input channels of a 2D DenseNet-121.
_base_ = [
    "../_base_/models/faster_rcnn_densenet.py",
    "../_base_/datasets/deeplesion.py",
    "../_base_/schedules/schedule_20e.py",
    "../_base_/default_runtime.py",
]
num_slices = 3
interpolate = True
model = dict(backbone=dict(type="DenseNet25DBackbone", num_slices=num_slices, _delete_=True,
                           pretrained="https://download.pytorch.org/models/densenet121-a639ec97.pth",
                           first_conv_init="center", neck_init="published"),
             test_cfg=dict(rcnn=dict(score_thr=0.005)))  # the published 2.5D threshold
# the published 2.5D batch: 16 images per GPU (4 GPUs, lr 0.02)
train_dataloader = dict(batch_size=16, dataset=dict(num_slices=num_slices, interpolate=interpolate))
val_dataloader = dict(dataset=dict(num_slices=num_slices, interpolate=interpolate))
test_dataloader = dict(dataset=dict(num_slices=num_slices, interpolate=interpolate))
# the published total batch (4 GPUs) for lr 0.02: tools/train.py --auto-scale-lr scales from it
auto_scale_lr = dict(enable=False, base_batch_size=64)
