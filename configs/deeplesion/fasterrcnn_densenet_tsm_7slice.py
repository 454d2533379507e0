# TSM over 7 slices resampled to 2 mm: the 3-slice config with num_slices = 7.
_base_ = ["./fasterrcnn_densenet_tsm_3slice.py"]
num_slices = 7
model = dict(backbone=dict(num_slices=num_slices))
train_dataloader = dict(dataset=dict(num_slices=num_slices))
val_dataloader = dict(dataset=dict(num_slices=num_slices))
test_dataloader = dict(dataset=dict(num_slices=num_slices))
