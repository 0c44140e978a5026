// PyTorch interop: import state_dicts (.pt, .safetensors) and ONNX exports, export weights and
// inference models back, and compare advrun's numbers with PyTorch's.

export { openModel, detectModelKind, withArchOptions, specFromArchOptions, type OpenedModel, type ArchOptions, type DataDefaults, type ModelKind } from './load.js';
export { importOnnx, importOnnxFile, importedModel, importedState, type ImportedOnnx } from './onnx-import.js';
export { ensureImportedArtifacts, type ImportedArtifactOptions } from './imported-artifacts.js';
export { readForeignState, decodeForeignState, fitState, findStateDict } from './state-dict.js';
export { readTorchFile, decodeTorchFile, encodeTorchStateDict, writeTorchStateDict } from './torch-file.js';
export { restrictedUnpickle } from './pickle.js';
export { exportModel, inferenceGraph, torchStateDict, EXPORT_FORMATS, type ExportFormat } from './export.js';
export { compareWithReference, dumpData, evaluatePerExample, loadDumpedData, readReference, firstExamples, formatComparison, type Reference, type CompareResult } from './compare.js';
