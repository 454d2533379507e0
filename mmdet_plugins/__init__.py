"""MMDetection 3 glue for alignshift: import (or ``custom_imports``) registers everything."""

from .amp import AutocastOptimWrapper, enable_amp
from .backbones import DenseNet3DBackbone, DenseNet25DBackbone
from .datasets import DeepLesionDataset
from .detector import ThicknessAwareFasterRCNN
from .diagnostics import GradNormRecorderHook
from .hooks import DeepLesionVisualizationHook
from .legacy import LoadDeepLesionSlicesV1, V1AnchorGenerator, V1DeltaXYWHBBoxCoder, V1SingleRoIExtractor
from .metrics import DeepLesionFROCMetric
from .runner import AlignShiftRunner
from .transforms import LoadDeepLesionSlices, RandomShiftScaleRotate
from .tta import DeepLesionTTAModel

__all__ = ["AlignShiftRunner", "AutocastOptimWrapper", "DeepLesionDataset", "DeepLesionFROCMetric",
           "DeepLesionTTAModel", "DeepLesionVisualizationHook", "enable_amp",
           "DenseNet25DBackbone",
           "DenseNet3DBackbone", "GradNormRecorderHook", "LoadDeepLesionSlices", "RandomShiftScaleRotate",
           "ThicknessAwareFasterRCNN",
           "LoadDeepLesionSlicesV1", "V1AnchorGenerator", "V1DeltaXYWHBBoxCoder", "V1SingleRoIExtractor"]
