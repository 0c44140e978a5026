// `advrun graphs grad|build`: write generated graphs to disk for inspection (Netron) or other runtimes.


import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { grad } from '../autodiff/grad.js';
import { Builder } from '../ir/builder.js';
import { loadOnnxFile, graphToModelProto } from '../onnx/io.js';
import { ensureArtifacts } from '../train/artifacts.js';
import { crossEntropy } from '../train/losses.js';
import { UserError } from '../util/errors.js';
import { checkOutputFile, writeFileAtomic } from '../util/fs.js';
import { sgdConfig } from '../train/optimizer.js';
import { modelSpecFrom, withModelOptions, withOptimizerOptions } from './options.js';

const gradCommand: CommandModule = {
  command: 'grad',
  describe: 'write an ONNX model that outputs logits, the cross-entropy loss and its gradients',
  builder: (y) => y
    .option('model', { type: 'string', demandOption: true, describe: 'an ONNX classifier (first input: images, first output: logits)' })
    .option('wrt', { choices: ['input', 'params'] as const, default: 'input' as const, describe: 'differentiate with respect to the input images or every float initializer' })
    .option('loss', { choices: ['ce'] as const, default: 'ce' as const, describe: 'mean cross-entropy against int64 `labels`' })
    .option('out', { type: 'string', demandOption: true, describe: 'output .onnx path (never the input; an existing file only with --force)' })
    .option('force', { type: 'boolean', default: false, describe: 'replace an existing --out file' }),
  handler: (argv) => {
    const a = argv as unknown as { model: string; wrt: 'input' | 'params'; out: string; force: boolean };
    checkOutputFile(a.out, [a.model], a.force);
    const g = loadOnnxFile(a.model);
    if (g.inputs.length === 0 || g.outputs.length === 0) throw new UserError(`${a.model} has no inputs or no outputs`);
    const image = g.inputs[0]!;
    const logits = g.outputs[0]!;
    // The loss is built in float32 (as advrun's own graphs); a float16 model would need casts around it.
    if (g.type(logits).dtype !== 'float32') throw new UserError(`${a.model}: its logits are ${g.type(logits).dtype}; graphs grad needs a float32 classifier (export it in float32, or cast inside the model)`);
    const b = new Builder(g);
    const batch = g.shape(logits)[0]!;
    const labels = g.addInput('labels', 'int64', [batch]);
    const loss = crossEntropy(b, logits, labels);
    g.addNode('Identity', [loss], {}, { outputs: ['loss'] });
    const wrt = a.wrt === 'input' ? [image] : [...g.initializers].filter(([, t]) => t.dtype === 'float32').map(([n]) => n);
    if (wrt.length === 0) throw new UserError(`${a.model} has no float initializers to differentiate`);
    const { graph } = grad(g, 'loss', wrt);
    graph.outputs = [logits, 'loss', ...wrt.map((w) => `grad_${w}`)];
    writeFileAtomic(resolve(a.out), graphToModelProto(graph));
    console.log(`wrote ${a.out}: inputs ${graph.inputs.join(', ')}; outputs ${graph.outputs.length} (logits, loss, ${wrt.length} gradient${wrt.length > 1 ? 's' : ''})`);
  },
};

const buildCommand: CommandModule = {
  command: 'build',
  describe: "write a model's training artifacts (train step, eval, attack graphs, manifest) to a directory",
  builder: (y) => withOptimizerOptions(withModelOptions(y))
    .option('out', { type: 'string', default: 'graphs', describe: 'artifacts root; files go to <out>/<content hash>/' })
    .option('batch-size', { type: 'number', default: 128, describe: 'batch size the train step is planned for (it runs any batch size; this sizes its cache-sized pieces)' }),
  handler: (argv) => {
    const a = argv as any;
    if (!Number.isInteger(a.batchSize) || a.batchSize < 1) throw new UserError(`--batch-size must be a positive integer, got ${a.batchSize}`);
    const cfg = { model: modelSpecFrom(a), loss: { kind: 'ce' as const, labelSmoothing: a.labelSmoothing }, optimizer: sgdConfig(a), plannedBatch: a.batchSize };
    const art = ensureArtifacts(cfg, resolve(a.out));
    const graphs = Object.entries(art.manifest.graphs).map(([k, v]) => `${k} (${v.inputs.length} inputs, ${v.outputs.length} outputs)`).join(', ');
    console.log(`${art.cached ? 'cached' : 'built'} ${art.dir}: ${graphs}`);
  },
};

export const graphsCommand: CommandModule = {
  command: 'graphs <action>',
  describe: 'generate and inspect ONNX graphs (gradients, training artifacts)',
  builder: (y) => y.command(gradCommand).command(buildCommand).demandCommand(1),
  handler: () => {},
};
