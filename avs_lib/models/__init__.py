"""The models: AVSBench's ResNet + TPAVI segmenter, VGGish, the thesis' crop classifier, loaders."""

from avs_lib.models.avs_model import AVSModel
from avs_lib.models.build import build_audio_encoder, build_crop_classifier, build_model
from avs_lib.models.config import BACKBONES, ModelConfig
from avs_lib.models.crop import CropClassifier
from avs_lib.models.decoder import ClassifierModule, FeatureFusionBlock, ResidualConvUnit
from avs_lib.models.fusion import CrossModalAttention
from avs_lib.models.resnet import ResNetEncoder
from avs_lib.models.tpavi import TPAVI
from avs_lib.models.vggish import VGGish
from avs_lib.models.weights import (
    load_avs_checkpoint,
    load_imagenet_resnet,
    load_vggish,
    read_state_dict,
)

__all__ = ["AVSModel", "BACKBONES", "ClassifierModule", "CropClassifier", "CrossModalAttention",
           "FeatureFusionBlock", "ModelConfig", "ResNetEncoder", "ResidualConvUnit", "TPAVI",
           "VGGish", "build_audio_encoder", "build_crop_classifier", "build_model", "load_avs_checkpoint",
           "load_imagenet_resnet", "load_vggish", "read_state_dict"]
