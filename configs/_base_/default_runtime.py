default_scope = "mmdet"
custom_imports = dict(imports=["mmdet_plugins"], allow_failed_imports=False)
# AlignShiftRunner: safe checkpoint loading under torch >= 2.6 and CPU-only DDP
# (see mmdet_plugins/runner.py).
runner_type = "AlignShiftRunner"

default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    # key-slice overlays of ground truth and detections; tools/test.py --show-dir turns it on
    visualization=dict(type="DeepLesionVisualizationHook", draw=False, score_thr=0.5),
)
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),
)
vis_backends = [dict(type="LocalVisBackend")]
visualizer = dict(type="DetLocalVisualizer", vis_backends=vis_backends, name="visualizer")
log_processor = dict(type="LogProcessor", window_size=50, by_epoch=True)
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=0)
