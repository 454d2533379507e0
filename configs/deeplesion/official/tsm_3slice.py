# Inference with the published TSM 3-slice snapshot (M3DV/AlignShift deeplesion/mconfigs/densenet_tsm.py):
# the AlignShift setting (./alignshift_3slice.py) with TSM convs, every series resampled to 2 mm and
# the published TSM score threshold (5e-5).
_base_ = ["./alignshift_3slice.py"]
published_variant = "tsm"
paper_variant = "tsm_3slice"
model = dict(backbone=dict(conv="tsm"), test_cfg=dict(rcnn=dict(score_thr=5e-5)))
test_pipeline = [dict(type="LoadDeepLesionSlicesV1", variant=published_variant), *_base_.test_pipeline[1:]]
val_dataloader = dict(dataset=dict(interpolate=True, pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(interpolate=True, pipeline=test_pipeline))
val_evaluator = dict(paper_variant=paper_variant)
test_evaluator = val_evaluator
