# Inference with the published TSM 3-slice snapshot (M3DV/AlignShift deeplesion/mconfigs/densenet_tsm.py):
# the AlignShift setting (./alignshift_3slice.py) with TSM convs, every series resampled to 2 mm and
# the published TSM score threshold (5e-5).
_base_ = ["./alignshift_3slice.py"]
num_slices = 3
published_variant = "tsm"
paper_variant = "tsm_3slice"
model = dict(backbone=dict(conv="tsm", num_slices=num_slices), test_cfg=dict(rcnn=dict(score_thr=5e-5)))
_meta_keys = ("img_id", "img_path", "file_name", "ori_shape", "img_shape", "scale_factor", "flip",
              "flip_direction", "thickness", "spacing")
test_pipeline = [
    dict(type="LoadDeepLesionSlicesV1", variant=published_variant),
    dict(type="Resize", scale=(512, 512), keep_ratio=True),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="PackDetInputs", meta_keys=_meta_keys),
]
val_dataloader = dict(dataset=dict(num_slices=num_slices, interpolate=True, pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(num_slices=num_slices, interpolate=True, pipeline=test_pipeline))
val_evaluator = dict(paper_variant=paper_variant)
test_evaluator = val_evaluator
