# TSM: 3D DenseNet-121 over 7 slices resampled to 2 mm, whole-slice channel shifts.
_base_ = [
    "../_base_/models/faster_rcnn_densenet.py",
    "../_base_/datasets/deeplesion.py",
    "../_base_/schedules/schedule_20e.py",
    "../_base_/default_runtime.py",
]
num_slices = 7
interpolate = True
model = dict(backbone=dict(conv="tsm", num_slices=num_slices))
train_dataloader = dict(dataset=dict(num_slices=num_slices, interpolate=interpolate))
val_dataloader = dict(dataset=dict(num_slices=num_slices, interpolate=interpolate))
test_dataloader = dict(dataset=dict(num_slices=num_slices, interpolate=interpolate))
