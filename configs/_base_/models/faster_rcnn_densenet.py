# Faster R-CNN on one 512-channel stride-4 map of the truncated DenseNet-121 (published setting).
# Anchors: base size 4 x scales [4, 6, 8, 12, 24, 48] = 16..192 px, ratios 0.5 / 1 / 2.
# The published recipe (M3DV/AlignShift deeplesion/mconfigs/*.py, docs/deeplesion.md "audited"):
# mmdet 1.x's anchors, box coder and RoIAlign (mmdet_plugins/legacy.py), NMS with the +1 box area,
# ImageNet's green conv0 filter, Kaiming-initialised depth reductions and laterals, and RPN
# 12000 -> 2000 proposals in training, 6000 -> 300 in test.
model = dict(
    type="ThicknessAwareFasterRCNN",
    # windowed slices are in [0, 255]; normalised like a grey ImageNet image
    data_preprocessor=dict(type="DetDataPreprocessor", mean=[114.75], std=[57.375],
                           bgr_to_rgb=False, pad_size_divisor=32),
    backbone=dict(type="DenseNet3DBackbone", conv="alignshift", num_slices=7,
                  pretrained="https://download.pytorch.org/models/densenet121-a639ec97.pth",
                  first_conv_init="center", neck_init="published"),
    rpn_head=dict(
        type="RPNHead", in_channels=512, feat_channels=512,
        anchor_generator=dict(type="V1AnchorGenerator", strides=[4], base_sizes=[4],
                              scales=[4, 6, 8, 12, 24, 48], ratios=[0.5, 1.0, 2.0]),
        bbox_coder=dict(type="V1DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
        loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type="SmoothL1Loss", beta=1.0 / 9.0, loss_weight=1.0)),
    roi_head=dict(
        type="StandardRoIHead",
        bbox_roi_extractor=dict(type="V1SingleRoIExtractor",
                                roi_layer=dict(type="RoIAlign", output_size=7, sampling_ratio=2,
                                               aligned=False),
                                out_channels=512, featmap_strides=[4]),
        bbox_head=dict(
            type="Shared2FCBBoxHead", in_channels=512, fc_out_channels=2048, roi_feat_size=7,
            num_classes=1,
            bbox_coder=dict(type="V1DeltaXYWHBBoxCoder", target_means=[0.0] * 4,
                            target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type="SmoothL1Loss", beta=1.0, loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.7, neg_iou_thr=0.3,
                               min_pos_iou=0.3, match_low_quality=True, ignore_iof_thr=-1),
                 sampler=dict(type="RandomSampler", num=32, pos_fraction=0.5, neg_pos_ub=-1,
                              add_gt_as_proposals=False),
                 allowed_border=0, pos_weight=-1, debug=False),
        rpn_proposal=dict(nms_pre=12000, max_per_img=2000,
                          nms=dict(type="nms", iou_threshold=0.7, offset=1), min_bbox_size=-1),
        rcnn=dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.5,
                                min_pos_iou=0.5, match_low_quality=False, ignore_iof_thr=-1),
                  sampler=dict(type="RandomSampler", num=64, pos_fraction=0.25, neg_pos_ub=-1,
                               add_gt_as_proposals=True),
                  pos_weight=-1, debug=False)),
    test_cfg=dict(
        rpn=dict(nms_pre=6000, max_per_img=300, nms=dict(type="nms", iou_threshold=0.7, offset=1),
                 min_bbox_size=-1),
        # the published threshold of each variant: 0.001 (AlignShift), 0.005 (2.5D), 5e-5 (TSM, A3D)
        rcnn=dict(score_thr=0.001, nms=dict(type="nms", iou_threshold=0.5, offset=1), max_per_img=50)))
