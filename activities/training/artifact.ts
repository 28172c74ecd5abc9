/**
 * `artifact.json` of the models the train and distill steps publish (the format is
 * `contracts/models.ts`): what the input is and how to prepare it, what comes out, the
 * backbone and how it was trained.
 */
import { MODEL_ARTIFACT_FORMAT, type FeatureBackbone, type ModelArtifact } from '../../contracts';
import { preprocessTag, type BackboneSpec } from '../../domain/backbone/backbones';
import { IMAGENET_LOGITS_LAYER } from '../../domain/backbone/tfjs-backbone';

/** What both kinds of artifact share. */
interface ArtifactParts {
  labels: string[];
  head: { hidden: number; dropout: number };
  training: Record<string, number | boolean | string>;
  workflowId: string;
}

/** A backbone as a feature input names it (an `EmbeddingModelId` without the runtime). */
export function featureBackbone(b: BackboneSpec): FeatureBackbone {
  return { name: b.name, weightsSha256: b.source.pthSha256, inputSize: b.inputSize, dim: b.dim, preprocess: preprocessTag(b) };
}

/** The fields every artifact has, from its parts. */
function shared(p: ArtifactParts, role: ModelArtifact['role']): Omit<ModelArtifact, 'input' | 'backbone' | 'extraOutputs'> {
  return {
    format: MODEL_ARTIFACT_FORMAT,
    role,
    framework: 'tfjs-layers-model',
    files: { model: 'model.json', weights: 'weights.bin' },
    labels: p.labels,
    output: { kind: 'probabilities', shape: [null, p.labels.length], layer: 'probs' },
    head: p.head,
    training: p.training,
    workflowId: p.workflowId,
  };
}

function backboneOf(b: BackboneSpec, fineTunedFrom: string | null): ModelArtifact['backbone'] {
  return { name: b.name, weightsSha256: b.source.pthSha256, source: `${b.source.package} ${b.source.version}`, fineTunedFrom };
}

/**
 * The artifact of an image model (the student, or the teacher with its whole backbone
 * fine-tuned): a backbone and a head, image in (`[null, S, S, 3]`, pixel values in
 * [0, 255], resized as the backbone says), class probabilities out (output 0) and the
 * backbone's ImageNet logits (output 1).
 */
export function imageModelArtifact(p: ArtifactParts & { backbone: BackboneSpec; fineTunedFrom: string | null; role?: ModelArtifact['role'] }): ModelArtifact {
  const b = p.backbone;
  return {
    ...shared(p, p.role ?? 'student'),
    input: {
      kind: 'image',
      shape: [null, b.inputSize, b.inputSize, 3],
      preprocess: preprocessTag(b),
      size: b.inputSize,
      blurSigma: b.blurSigma,
      resize: b.resize,
      range: [0, 255],
    },
    extraOutputs: [{ kind: 'imagenet-logits', shape: [null, b.classes], layer: IMAGENET_LOGITS_LAYER }],
    backbone: backboneOf(b, p.fineTunedFrom),
  };
}

/**
 * The artifact of a head on backbone features (the teacher): the input is the backbones'
 * raw pooled features concatenated in `backbones` order.
 */
export function featureModelArtifact(p: ArtifactParts & { backbones: BackboneSpec[] }): ModelArtifact {
  const first = p.backbones[0]!;
  return {
    ...shared(p, 'teacher'),
    input: {
      kind: 'features',
      shape: [null, p.backbones.reduce((n, b) => n + b.dim, 0)],
      backbone: featureBackbone(first),
      backbones: p.backbones.map(featureBackbone),
    },
    backbone: backboneOf(first, null),
  };
}
