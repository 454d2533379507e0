# Published schedule: SGD lr 0.02 (2 images per GPU), momentum 0.9, weight decay 1e-4, gradient
# clipping at 35, linear warm-up over 500 iterations from 1/100 of the lr, 20 epochs with steps at
# epochs 9 and 16.
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=20, val_interval=1)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
param_scheduler = [
    dict(type="LinearLR", start_factor=1.0 / 100, by_epoch=False, begin=0, end=500),
    dict(type="MultiStepLR", begin=0, end=20, by_epoch=True, milestones=[9, 16], gamma=0.1),
]
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="SGD", lr=0.02, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=35, norm_type=2),
)
