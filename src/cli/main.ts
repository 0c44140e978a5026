#!/usr/bin/env node
// advrun command line. Each command lives in its own module; user errors print one line, no stack.

import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { fileSystemMessage, isUserFacing } from '../util/errors.js';
import { graphsCommand } from './graphs.js';
import { benchCommand } from './bench.js';
import { trainCommand } from './train.js';
import { evalCommand } from './eval.js';
import { reproduceCommand } from './reproduce.js';
import { exportCommand } from './export.js';
import { compareCommand } from './compare.js';
import { gridCommand } from './grid.js';
import { transferCommand } from './transfer.js';
import { sharpnessCommand } from './sharpness.js';
import { VERSION } from '../version.js';

const COMMANDS = [trainCommand, evalCommand, reproduceCommand, graphsCommand, benchCommand, exportCommand, compareCommand, gridCommand, transferCommand, sharpnessCommand];
const COMMAND_NAMES = COMMANDS.map((c) => String(c.command).split(' ')[0]!);

/** Where a usage error's --help is: the command's own when the first word is a command, else the top level. */
function helpHint(): string {
  const first = process.argv[2];
  return first && COMMAND_NAMES.includes(first) ? `advrun ${first} --help` : 'advrun --help';
}

async function main(): Promise<void> {
  await yargs(hideBin(process.argv))
    .scriptName('advrun')
    .usage('$0 <command> [options]\n\nAdversarial-robustness experiments on ONNX Runtime.')
    .command(COMMANDS)
    .demandCommand(1, 'name a command (see advrun --help)')
    .strict()
    // A repeated option takes its last value, as in most command lines (not an array).
    .parserConfiguration({ 'duplicate-arguments-array': false })
    .version(VERSION)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      // yargs reports an option's own check (a `coerce` that threw) as a YError: a usage error like the rest.
      if (err && err.name !== 'YError') throw err;
      // Bad usage (unknown option, missing value): one line naming the problem and where to look.
      process.stderr.write(`advrun: ${msg} (see \`${helpHint()}\`)\n`);
      process.exit(2);
    })
    .parseAsync();
}

main().catch((e: unknown) => {
  if (isUserFacing(e)) {
    process.stderr.write(`advrun: ${e.message}\n`);
    process.exit(2);
  }
  const fsMessage = fileSystemMessage(e);
  if (fsMessage) {
    process.stderr.write(`advrun: ${fsMessage}\n`);
    process.exit(2);
  }
  process.stderr.write(`advrun: internal error: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
