# Inference with the published TSM 7-slice snapshot; see ./tsm_3slice.py and ./alignshift_3slice.py.
_base_ = ["./tsm_3slice.py"]
num_slices = 7
paper_variant = "tsm_7slice"
model = dict(backbone=dict(num_slices=num_slices))
val_dataloader = dict(dataset=dict(num_slices=num_slices))
test_dataloader = dict(dataset=dict(num_slices=num_slices))
val_evaluator = dict(paper_variant=paper_variant)
test_evaluator = val_evaluator
