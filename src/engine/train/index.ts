/**
 * Training on the GPU (issue #7): backward kernels, losses, AdamW and the LR schedule. Each kernel
 * has a TypeScript reference in ./ref.ts (checked against finite differences of the forward) and a
 * test against it; see ./README.md for the conventions and how the pieces chain into a step.
 */
export { encodeLinearBackward, type Accumulate, type LinearBackwardArgs } from './ops/linear';
export { encodeRmsNormBackward, type RmsNormBackwardArgs } from './ops/rmsnorm';
export { encodeSwiGluBackward } from './ops/elementwise';
export { encodeCopyHeads, encodeRopeBackward, type HeadView, type RopeBackwardArgs } from './ops/rope';
export { attentionBackwardStatsFloats, encodeAttentionBackward, MAX_BWD_HEAD_DIM, type AttentionBackwardArgs } from './ops/attention';
export { crossEntropyTargets, encodeCrossEntropy, type CrossEntropyArgs } from './ops/loss';
export { embeddingGradPlan, encodeEmbeddingBackward, uploadEmbeddingGradPlan, type EmbeddingBackwardArgs, type EmbeddingGradPlan } from './ops/embedding';
export { encodeRouterBackward, type RouterBackwardArgs } from './ops/router';
export { encodeMoeCombineBackward, type MoeCombineBackwardArgs } from './ops/moe';
export { adamwStepWords, encodeAdamWStep, encodeGradNorm, gradNormPartialFloats, OPTIM_STATS_FLOATS, type AdamWStepArgs, type GradSlice } from './ops/adamw';
export { AdamW, ADAMW_DEFAULTS, type AdamWOptions, type OptimStats, type TrainableParam } from './optim';
export { learningRate, validateSchedule, type LrSchedule } from './schedule';
export { DROPPED, IGNORE_INDEX, type AdamWHyper, type CombineShared, type RouterGradOptions } from './ref';
// The model-level pieces built on the kernels above.
export { Trainer, TRAINER_DEFAULTS, TrainerStateError, type Sequence, type StepEvent, type TrainerOptions, type TrainerSnapshot, type TrainerState, type TrainSummary } from './trainer';
export { decodeTrainCheckpoint, encodeTrainCheckpoint, TrainCheckpointError, TRAIN_CHECKPOINT_FORMAT } from './checkpoint';
export { TrainGraph } from './graph';
export { trainables, exportWeights, encodeSafetensors, TRAIN_MODES, type TrainMode } from './params';
export { applyLora, createLora, mergeLora, peftConfig, peftTensors, unmergeLora, LORA_DEFAULTS, type LoraAdapter, type LoraOptions } from './lora';
export { PeftAdapterError, readPeftAdapter, uploadAdapter } from './peft';
export { examplesJsonl, trainingRecipe, type Recipe } from './recipe';
export { adapterFiles, recipeFiles, type ExportedFile } from './export';
export { auxFreeBias, balanceLoss, balanceLossFor, LOSS_PRESETS, orthogonalityLoss, zLoss, type BalanceLoss, type BalancePreset, type LossConfig } from './losses';
export { EarlyStopping, RoutingMonitor, type MonitorOptions, type MonitorRecord } from './monitor';
export { loadTrainingData, TrainingDataError, type TrainExample } from './data';
