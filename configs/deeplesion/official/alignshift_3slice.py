# Inference with the published AlignShift 3-slice snapshot (mmdet 1.0rc1), converted by
#   python tools/download.py download alignshift_3slice        (or tools/convert_official_checkpoint.py)
#   python tools/test.py configs/deeplesion/official/alignshift_3slice.py checkpoints/alignshift_3slice.pth
# It reproduces mmdet 1.x inference of M3DV/AlignShift deeplesion/mconfigs/densenet_align.py:
# - input: window [-1024, 2050] -> [0, 255], minus 50 (the published windowing), std 1;
# - the published slice sampling (LoadDeepLesionSlicesV1, alignshift/data/published.py);
# - from the paper config, which trains the published recipe
#   (configs/_base_/models/faster_rcnn_densenet.py):
#   anchors 4 x [4, 6, 8, 12, 24, 48], ratios 0.5/1/2, stride 4, centred on the cell corner;
#   mmdet 1.x box decoding (+-0.5 on the final corners), RoIAlign over [x1, x2 + 1]
#   (aligned=False, sampling_ratio=2), class-specific regression, NMS with the +1 box area
#   (offset=1); RPN top 6000 -> NMS 0.7 -> 300 proposals; R-CNN score > 0.001, NMS 0.5, 50 boxes.
_base_ = ["../fasterrcnn_densenet_alignshift_3slice.py"]
published_variant = "alignshift"
paper_variant = "alignshift_3slice"

model = dict(data_preprocessor=dict(mean=[50.0], std=[1.0]), backbone=dict(pretrained=None))

# the test pipeline of configs/_base_/datasets/deeplesion.py with the published slice loader
test_pipeline = [dict(type="LoadDeepLesionSlicesV1", variant=published_variant), *_base_.test_pipeline[1:]]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_evaluator = dict(type="DeepLesionFROCMetric", paper_variant=paper_variant)
test_evaluator = val_evaluator
