"""MMDetection 3 glue for alignshift: import (or ``custom_imports``) registers everything."""

from .backbones import DenseNet3DBackbone, DenseNet25DBackbone
from .datasets import DeepLesionDataset
from .detector import ThicknessAwareFasterRCNN
from .diagnostics import GradNormRecorderHook
from .hooks import DeepLesionVisualizationHook
from .legacy import LoadDeepLesionSlicesV1, V1AnchorGenerator, V1DeltaXYWHBBoxCoder, V1SingleRoIExtractor
from .metrics import DeepLesionFROCMetric
from .runner import AlignShiftRunner
from .transforms import LoadDeepLesionSlices, RandomShiftScaleRotate

__all__ = ["AlignShiftRunner", "DeepLesionDataset", "DeepLesionFROCMetric", "DeepLesionVisualizationHook",
           "DenseNet25DBackbone",
           "DenseNet3DBackbone", "GradNormRecorderHook", "LoadDeepLesionSlices", "RandomShiftScaleRotate",
           "ThicknessAwareFasterRCNN",
           "LoadDeepLesionSlicesV1", "V1AnchorGenerator", "V1DeltaXYWHBBoxCoder", "V1SingleRoIExtractor"]
