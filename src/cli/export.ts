// `advrun export`: write a model as an ONNX inference model, or its weights as a PyTorch state_dict
// (.safetensors or torch.save .pt).

import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { EXPORT_FORMATS, exportModel, type ExportFormat } from '../interop/export.js';
import { openModel, withArchOptions } from '../interop/load.js';
import { checkOutputFile } from '../util/fs.js';
import { GRAPHS_DIR } from './train.js';

export const exportCommand: CommandModule = {
  command: 'export',
  describe: 'export a model: ONNX inference model, or PyTorch state_dict (.safetensors / torch.save .pt)',
  builder: (y) => withArchOptions(y)
    .option('model', { type: 'string', demandOption: true, describe: 'advrun checkpoint, PyTorch state_dict (.pt/.safetensors, with --arch) or .onnx' })
    .option('format', { choices: EXPORT_FORMATS, demandOption: true, describe: 'onnx: inference model (dynamic batch, normalisation inside); safetensors / pt-state-dict: weights for model.load_state_dict' })
    .option('out', { type: 'string', demandOption: true, describe: 'output file (never the input; an existing file only with --force)' })
    .option('force', { type: 'boolean', default: false, describe: 'replace an existing --out file' }),
  handler: async (argv) => {
    const a = argv as any;
    checkOutputFile(a.out, [a.model], a.force);
    const m = await openModel(a.model, { arch: a, graphsDir: GRAPHS_DIR });
    const out = resolve(a.out);
    const { tensors } = exportModel(m, a.format as ExportFormat, out);
    console.log(`wrote ${a.out} (${a.format}, ${tensors} tensors) from ${m.kind} model ${a.model} [${m.spec.arch}, ${m.spec.inChannels}x${m.spec.imageSize}x${m.spec.imageSize}, ${m.spec.numClasses} classes]`);
  },
};
