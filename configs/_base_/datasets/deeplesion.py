# DeepLesion as written by tools/prepare_deeplesion.py. The root comes from $DEEPLESION_ROOT
# (default data/DeepLesion/) or --cfg-options train_dataloader.dataset.data_root=...
dataset_type = "DeepLesionDataset"
data_root = "{{$DEEPLESION_ROOT:data/DeepLesion/}}"
num_slices = 7
norm_interval = 2.0
interpolate = True  # AlignShift configs set False: thick series keep their native neighbours
hu_window = (-1024.0, 2050.0)
img_scale = (512, 512)

meta_keys = ("img_id", "img_path", "file_name", "ori_shape", "img_shape", "scale_factor", "flip",
             "flip_direction", "thickness", "spacing")
train_pipeline = [
    dict(type="LoadDeepLesionSlices"),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="Resize", scale=img_scale, keep_ratio=True),
    # the published albumentations ShiftScaleRotate (deeplesion/mconfigs/*.py): bicubic, reflect-101
    dict(type="RandomShiftScaleRotate", shift_limit=0.04, scale_limit=0.2, rotate_limit=15,
         prob=0.8, interpolation="bicubic", border="reflect_101"),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackDetInputs", meta_keys=meta_keys),
]
test_pipeline = [
    dict(type="LoadDeepLesionSlices"),
    dict(type="Resize", scale=img_scale, keep_ratio=True),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="PackDetInputs", meta_keys=meta_keys),
]
_dataset = dict(type=dataset_type, data_root=data_root, data_prefix=dict(img="Images_png/"),
                num_slices=num_slices, norm_interval=norm_interval, interpolate=interpolate,
                window=hu_window)
train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    batch_sampler=dict(type="AspectRatioBatchSampler"),
    dataset=dict(**_dataset, ann_file="annotations/deeplesion_train.json",
                 filter_cfg=dict(filter_empty_gt=True), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(**_dataset, ann_file="annotations/deeplesion_val.json", test_mode=True,
                 pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(**_dataset, ann_file="annotations/deeplesion_test.json", test_mode=True,
                 pipeline=test_pipeline))
val_evaluator = dict(type="DeepLesionFROCMetric")
test_evaluator = val_evaluator
