# The CPU demo: the AlignShift 3-slice detector on the synthetic DeepLesion of `make demo`.
# Departures from the paper's config, for a laptop CPU: 128-pixel images, no ImageNet
# initialisation (no download), a 512-unit box head, a short schedule.
_base_ = ["../deeplesion/fasterrcnn_densenet_alignshift_3slice.py"]

data_root = "{{$DEEPLESION_ROOT:data/synthetic_deeplesion/}}"
img_scale = (128, 128)
max_epochs = 10

# mmdet 3's anchors, box coder, RoIAlign and NMS, with which the demo's figure was measured (the
# paper configs use mmdet 1.x's).
model = dict(
    backbone=dict(pretrained=None, neck_init="default"),
    rpn_head=dict(anchor_generator=dict(type="AnchorGenerator"), bbox_coder=dict(type="DeltaXYWHBBoxCoder")),
    roi_head=dict(bbox_roi_extractor=dict(type="SingleRoIExtractor", roi_layer=dict(aligned=True)),
                  bbox_head=dict(fc_out_channels=512, reg_class_agnostic=True,
                                 bbox_coder=dict(type="DeltaXYWHBBoxCoder"))),
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300, min_bbox_size=0,
                                     nms=dict(offset=0))),
    test_cfg=dict(rpn=dict(nms_pre=600, max_per_img=300, min_bbox_size=0, nms=dict(offset=0)),
                  rcnn=dict(nms=dict(offset=0))))

# the pipelines of configs/_base_/datasets/deeplesion.py at 128 pixels, with a milder augmentation
_resize = dict(type="Resize", scale=img_scale, keep_ratio=True)
_augment = dict(type="RandomShiftScaleRotate", shift_limit=0.0625, scale_limit=0.1, rotate_limit=15, prob=0.5)
train_pipeline = [{"Resize": _resize, "RandomShiftScaleRotate": _augment}.get(t.type, t)
                  for t in _base_.train_pipeline]
test_pipeline = [_resize if t.type == "Resize" else t for t in _base_.test_pipeline]
train_dataloader = dict(num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(num_workers=0, persistent_workers=False,
                       dataset=dict(data_root=data_root, pipeline=test_pipeline))

train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type="LinearLR", start_factor=1.0 / 3, by_epoch=False, begin=0, end=100),
    dict(type="MultiStepLR", begin=0, end=max_epochs, by_epoch=True, milestones=[8], gamma=0.1),
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=max_epochs, max_keep_ckpts=1),
                     visualization=dict(max_images=12))
