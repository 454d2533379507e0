# Inference with the published AlignShift 7-slice snapshot (the paper's main model); see
# ./alignshift_3slice.py for what reproduces mmdet 1.x inference.
_base_ = ["./alignshift_3slice.py"]
num_slices = 7
paper_variant = "alignshift_7slice"
model = dict(backbone=dict(num_slices=num_slices))
val_dataloader = dict(dataset=dict(num_slices=num_slices))
test_dataloader = dict(dataset=dict(num_slices=num_slices))
val_evaluator = dict(paper_variant=paper_variant)
test_evaluator = val_evaluator
