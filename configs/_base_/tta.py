# Flip test-time augmentation, mmdet 3's way: `tools/test.py --tta` (as mmdet's tools/test.py)
# wraps the model in `tta_model` and runs the test split through `tta_pipeline`. Each image is
# run as is and mirrored left-right; both views carry the thickness (PackDetInputs meta_keys),
# and DeepLesionTTAModel merges them with the detector's own test NMS (model.test_cfg.rcnn: its
# IoU threshold, box-area offset and max_per_img). The ground truth is loaded after the flip,
# in the original orientation. For a config whose img_scale is not 512 x 512, override the
# Resize here, or let mmdet_plugins.tta.enable_flip_tta derive the pipeline from the config's
# own test pipeline.
tta_model = dict(type="DeepLesionTTAModel")
tta_pipeline = [
    dict(type="LoadDeepLesionSlices"),
    dict(type="TestTimeAug", transforms=[
        [dict(type="Resize", scale=(512, 512), keep_ratio=True)],
        [dict(type="RandomFlip", prob=0.0), dict(type="RandomFlip", prob=1.0)],
        [dict(type="LoadAnnotations", with_bbox=True)],
        [dict(type="PackDetInputs",
              meta_keys=("img_id", "img_path", "file_name", "ori_shape", "img_shape",
                         "scale_factor", "flip", "flip_direction", "thickness", "spacing", "patient"))],
    ]),
]
