# A small stock Faster R-CNN (ResNet-18, no pretrained download) used by the stack smoke test.
model = dict(
    type="FasterRCNN",
    data_preprocessor=dict(type="DetDataPreprocessor", mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type="ResNet", depth=18, num_stages=4, out_indices=(3,), frozen_stages=-1,
                  norm_cfg=dict(type="BN", requires_grad=True), norm_eval=False, init_cfg=None),
    rpn_head=dict(
        type="RPNHead", in_channels=512, feat_channels=128,
        anchor_generator=dict(type="AnchorGenerator", scales=[2, 4, 8], ratios=[0.5, 1.0, 2.0],
                              strides=[32]),
        bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
        loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type="L1Loss", loss_weight=1.0)),
    roi_head=dict(
        type="StandardRoIHead",
        bbox_roi_extractor=dict(type="SingleRoIExtractor",
                                roi_layer=dict(type="RoIAlign", output_size=7, sampling_ratio=0),
                                out_channels=512, featmap_strides=[32]),
        bbox_head=dict(
            type="Shared2FCBBoxHead", in_channels=512, fc_out_channels=128, roi_feat_size=7,
            num_classes=1,
            bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4,
                            target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type="L1Loss", loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.7, neg_iou_thr=0.3,
                               min_pos_iou=0.3, match_low_quality=True, ignore_iof_thr=-1),
                 sampler=dict(type="RandomSampler", num=64, pos_fraction=0.5, neg_pos_ub=-1,
                              add_gt_as_proposals=False),
                 allowed_border=-1, pos_weight=-1, debug=False),
        rpn_proposal=dict(nms_pre=500, max_per_img=100, nms=dict(type="nms", iou_threshold=0.7),
                          min_bbox_size=0),
        rcnn=dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.5,
                                min_pos_iou=0.5, match_low_quality=False, ignore_iof_thr=-1),
                  sampler=dict(type="RandomSampler", num=64, pos_fraction=0.25, neg_pos_ub=-1,
                               add_gt_as_proposals=True),
                  pos_weight=-1, debug=False)),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=100, nms=dict(type="nms", iou_threshold=0.7),
                 min_bbox_size=0),
        rcnn=dict(score_thr=0.001, nms=dict(type="nms", iou_threshold=0.5), max_per_img=50)))
