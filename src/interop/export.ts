// Exporting a model's weights for PyTorch-side tools:
//   onnx          - an inference model: input "input" [N, C, H, W] in [0, 1] (dynamic batch N),
//                   normalisation inside, eval-mode BatchNormalization (one per layer), output
//                   "logits" [N, classes]; standard opset-17 operators only, so onnxruntime (node,
//                   python, web) and PyTorch-side ONNX tools run it;
//   safetensors   - the PyTorch state_dict (PyTorch names, float32, num_batches_tracked as int64
//                   scalars), for safetensors.torch.load_file + model.load_state_dict;
//   pt-state-dict - the same state_dict in torch.save's zip format, for torch.load (also with
//                   weights_only=True) + model.load_state_dict.

import { writeSafetensors } from '../checkpoint/safetensors.js';
import type { Graph } from '../ir/graph.js';
import type { Tensor } from '../ir/tensor.js';
import { buildModel } from '../models/index.js';
import { graphToModelProto } from '../onnx/io.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';
import type { OpenedModel } from './load.js';
import { importedWithState } from './onnx-import.js';
import { int64Scalar, writeTorchStateDict } from './torch-file.js';

export const EXPORT_FORMATS = ['onnx', 'safetensors', 'pt-state-dict'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** The inference graph with the model's weights as initializers. */
export function inferenceGraph(m: OpenedModel): Graph {
  let g: Graph;
  if (m.imported) g = importedWithState(m.imported, m.state);
  else {
    const built = buildModel(m.spec, { bnMode: 'eval', seed: 0 });
    g = built.graph;
    for (const name of g.initializers.keys()) {
      const t = m.state.get(name);
      if (t) g.initializers.set(name, t);
    }
  }
  g.name = 'advrun_export';
  g.prune();
  return g;
}

/**
 * The PyTorch state_dict: parameters and buffers in the model's definition order, with
 * `<bn>.num_batches_tracked` (int64 scalar) after each `<bn>.running_var`.
 */
export function torchStateDict(m: OpenedModel, batchesTracked = m.meta?.step ?? 0): [string, Tensor][] {
  const names = m.imported
    ? [...m.imported.graph.initializers.keys()]
    : [...buildModel(m.spec, { bnMode: 'eval', seed: 0 }).graph.initializers.keys()];
  const stateNames = new Set([...m.artifacts.manifest.params.map((p) => p.name), ...m.artifacts.manifest.buffers]);
  const out: [string, Tensor][] = [];
  for (const name of names) {
    if (!stateNames.has(name)) continue;
    out.push([name, m.state.get(name)!]);
    if (name.endsWith('.running_var')) out.push([`${name.slice(0, -'running_var'.length)}num_batches_tracked`, int64Scalar(batchesTracked)]);
  }
  return out;
}

export function exportModel(m: OpenedModel, format: ExportFormat, out: string): { tensors: number } {
  switch (format) {
    case 'onnx': {
      const g = inferenceGraph(m);
      const meta: Record<string, string> = { advrun_model: JSON.stringify(m.spec), advrun_source: m.source };
      writeFileAtomic(out, graphToModelProto(g, meta));
      return { tensors: g.initializers.size };
    }
    case 'safetensors': {
      const sd = torchStateDict(m);
      writeSafetensors(out, new Map(sd), { format: 'pt' });
      return { tensors: sd.length };
    }
    case 'pt-state-dict': {
      const sd = torchStateDict(m);
      writeTorchStateDict(out, sd);
      return { tensors: sd.length };
    }
  }
  throw new UserError(`unknown export format "${String(format)}"; use ${EXPORT_FORMATS.join(', ')}`);
}
