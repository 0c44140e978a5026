// The subset of the ONNX protobuf schema (onnx.proto, IR version 8) that advrun reads and writes,
// declared with protobufjs's reflection API. Field numbers follow the official onnx.proto;
// fields advrun does not use (sparse tensors, functions, training info) are skipped by the decoder.

import protobuf from 'protobufjs';

const { Root, Type, Field, OneOf } = protobuf;

function message(name: string, fields: [string, number, string, ('repeated' | 'optional')?][]): protobuf.Type {
  const t = new Type(name);
  for (const [fname, id, ftype, rule] of fields) t.add(new Field(fname, id, ftype, rule ?? 'optional'));
  return t;
}

function build(): protobuf.Root {
  const root = new Root();
  const ns = root.define('onnx');

  ns.add(message('StringStringEntryProto', [['key', 1, 'string'], ['value', 2, 'string']]));
  ns.add(message('OperatorSetIdProto', [['domain', 1, 'string'], ['version', 2, 'int64']]));

  const tensor = message('TensorProto', [
    ['dims', 1, 'int64', 'repeated'],
    ['dataType', 2, 'int32'],
    ['floatData', 4, 'float', 'repeated'],
    ['int32Data', 5, 'int32', 'repeated'],
    ['stringData', 6, 'bytes', 'repeated'],
    ['int64Data', 7, 'int64', 'repeated'],
    ['name', 8, 'string'],
    ['rawData', 9, 'bytes'],
    ['doubleData', 10, 'double', 'repeated'],
    ['uint64Data', 11, 'uint64', 'repeated'],
    ['docString', 12, 'string'],
    ['externalData', 13, 'StringStringEntryProto', 'repeated'],
    ['dataLocation', 14, 'int32'],
  ]);
  ns.add(tensor);

  const dim = new Type('Dimension');
  dim.add(new Field('dimValue', 1, 'int64'));
  dim.add(new Field('dimParam', 2, 'string'));
  dim.add(new Field('denotation', 3, 'string'));
  dim.add(new OneOf('value', ['dimValue', 'dimParam']));
  const shape = message('TensorShapeProto', [['dim', 1, 'Dimension', 'repeated']]);
  shape.add(dim);
  ns.add(shape);

  const tensorType = message('Tensor', [['elemType', 1, 'int32'], ['shape', 2, 'TensorShapeProto']]);
  const typeProto = message('TypeProto', [['tensorType', 1, 'Tensor'], ['denotation', 6, 'string']]);
  typeProto.add(tensorType);
  ns.add(typeProto);

  ns.add(message('ValueInfoProto', [['name', 1, 'string'], ['type', 2, 'TypeProto'], ['docString', 3, 'string']]));

  ns.add(message('AttributeProto', [
    ['name', 1, 'string'],
    ['f', 2, 'float'],
    ['i', 3, 'int64'],
    ['s', 4, 'bytes'],
    ['t', 5, 'TensorProto'],
    ['g', 6, 'GraphProto'],
    ['floats', 7, 'float', 'repeated'],
    ['ints', 8, 'int64', 'repeated'],
    ['strings', 9, 'bytes', 'repeated'],
    ['tensors', 10, 'TensorProto', 'repeated'],
    ['docString', 13, 'string'],
    ['type', 20, 'int32'],
    ['refAttrName', 21, 'string'],
  ]));

  ns.add(message('NodeProto', [
    ['input', 1, 'string', 'repeated'],
    ['output', 2, 'string', 'repeated'],
    ['name', 3, 'string'],
    ['opType', 4, 'string'],
    ['attribute', 5, 'AttributeProto', 'repeated'],
    ['docString', 6, 'string'],
    ['domain', 7, 'string'],
  ]));

  ns.add(message('GraphProto', [
    ['node', 1, 'NodeProto', 'repeated'],
    ['name', 2, 'string'],
    ['initializer', 5, 'TensorProto', 'repeated'],
    ['docString', 10, 'string'],
    ['input', 11, 'ValueInfoProto', 'repeated'],
    ['output', 12, 'ValueInfoProto', 'repeated'],
    ['valueInfo', 13, 'ValueInfoProto', 'repeated'],
  ]));

  ns.add(message('ModelProto', [
    ['irVersion', 1, 'int64'],
    ['producerName', 2, 'string'],
    ['producerVersion', 3, 'string'],
    ['domain', 4, 'string'],
    ['modelVersion', 5, 'int64'],
    ['docString', 6, 'string'],
    ['graph', 7, 'GraphProto'],
    ['opsetImport', 8, 'OperatorSetIdProto', 'repeated'],
    ['metadataProps', 14, 'StringStringEntryProto', 'repeated'],
  ]));

  root.resolveAll();
  return root;
}

export const onnxRoot = build();
export const ModelProto = onnxRoot.lookupType('onnx.ModelProto');

/** AttributeProto.AttributeType codes. */
export const ATTR_TYPE = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8, TENSORS: 9 } as const;
