-- nn.SpatialBatchNormalization(nFeature, [eps], [momentum], [affine]): batch
-- normalization of [N, nFeature, H, W] input, statistics over the batch and the pixels
-- (see nn/BatchNormalization.lua).

local BN, _ = torch.class("nn.SpatialBatchNormalization", "nn.BatchNormalization")

BN.__version = 2
BN.nDim = 4
