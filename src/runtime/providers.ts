// The execution providers a user can ask for (`--ep`), in a module of their own: option parsing and grid
// specs name them without loading ONNX Runtime. `auto` tries the GPUs and says what it picked (session.ts).
export const EXECUTION_PROVIDERS = ['cpu', 'cuda', 'webgpu', 'auto'] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];
