import { open } from "node:fs/promises";
import { OnnxFormatError, ProtoReader, WIRE_LEN, WIRE_VARINT } from "./proto-reader.js";

export { OnnxFormatError } from "./proto-reader.js";

// Reads an ONNX model's signature (ModelProto → GraphProto inputs and outputs) without loading its
// weights, so a registry can describe and vet a model before onnxruntime allocates anything.
// Field numbers are onnx.proto's. Tensor payloads are skipped by position, never read.

/** A graph input or output, described as onnxruntime-node's `inputMetadata` would describe it. */
export interface OnnxValueInfo {
  name: string;
  /** onnxruntime `Tensor.Type` name ("float32", "int64", ...), "bfloat16", or "unknown" (non-tensors too). */
  type: string;
  /** number = dim_value, string = dim_param, "?" = neither; null when the model gives no shape. */
  shape: Array<number | string> | null;
}

/** An opset the model imports; "" is the default ONNX domain. */
export interface OnnxOpset { domain: string; version: number }

/** The signature and a few facts about an ONNX model, read without its weights. */
export interface OnnxHeader {
  irVersion: number;
  producerName?: string;
  producerVersion?: string;
  opsets: OnnxOpset[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  /** metadata_props; a null-prototype object, so a key like "__proto__" is just a key. */
  metadata: Record<string, string>;
  fileSize: number;
  /** Nodes of the main graph (not of subgraphs). */
  nodeCount: number;
  /** Dense and sparse initializers of the main graph. */
  initializerCount: number;
}

/** Limits for readOnnxHeader. */
export interface ReadOnnxOptions {
  /** Most graph inputs, and most outputs, accepted; default 10,000. */
  maxValueInfos?: number;
  /** Budget for every string decoded (names, metadata), in bytes; default 64 MiB. */
  maxStringBytes?: number;
}

// TensorProto.DataType → onnxruntime-node's names. 14/15 (complex) and the float8/float4 types
// have no onnxruntime-node name; bfloat16 has none either but is worth telling apart from "unknown".
const ELEM_TYPES: Readonly<Record<number, string>> = {
  1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
  8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64",
  16: "bfloat16", 21: "uint4", 22: "int4",
};

const MAX_OPSETS = 1000;
const MAX_METADATA = 10_000;
const MAX_RANK = 1024;
/**
 * Bytes a model may hold outside its graph, weights, functions and metadata (doc strings, fields this
 * onnx.proto does not know). onnxruntime reads the whole file into memory, so a valid model padded
 * with gigabytes of unknown fields would take that memory while accounting for none of it.
 */
const MAX_UNACCOUNTED_BYTES = 16 * 1024 * 1024;
// ModelProto: domain, model_version, training_info, functions; GraphProto: name, value_info,
// quantization_annotation. Skipped, but part of a model. Doc strings (6, 10) and unknown fields are not.
const MODEL_PARTS = new Set([4, 5, 20, 25]);
const GRAPH_PARTS = new Set([2, 13, 14]);

interface Graph {
  maxValueInfos: number;
  nodeCount: number;
  initializerCount: number;
  initializerNames: Set<string>;
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  /** Bytes of doc strings and unknown fields, in the graph and at the top level. */
  unaccounted: number;
}

type ValueType = Omit<OnnxValueInfo, "name">;

function tooMany(what: string, limit: number): OnnxFormatError {
  return new OnnxFormatError("too_large", `more than ${limit} ${what}`);
}

async function readDims(r: ProtoReader, end: number, depth: number, dims: Array<number | string>): Promise<void> {
  while (r.pos < end) {
    if (!r.ready(end)) await r.fill(end);
    const [field, wire] = r.tag(end);
    if (field !== 1 || wire !== WIRE_LEN) { r.skip(wire, end, field); continue; }
    if (dims.length >= MAX_RANK) throw tooMany("dimensions in one shape", MAX_RANK);
    const dimEnd = r.message(end, depth, "dimension");
    let dim: number | string = "?";
    while (r.pos < dimEnd) {
      if (!r.ready(dimEnd)) await r.fill(dimEnd);
      const [f, w] = r.tag(dimEnd);
      // dim_value and dim_param are a oneof: the last one written wins, as in protobuf.
      if (f === 1 && w === WIRE_VARINT) {
        const v = r.int64(dimEnd, "dim_value");
        dim = v >= 0 ? v : "?";
      } else if (f === 2 && w === WIRE_LEN) {
        dim = (await r.string(dimEnd, "dim_param")) || "?";
      } else {
        r.skip(w, dimEnd, f);
      }
    }
    dims.push(dim);
  }
}

async function readTensorType(r: ProtoReader, end: number, depth: number): Promise<ValueType> {
  let elemType = 0;
  let shape: Array<number | string> | null = null;
  while (r.pos < end) {
    if (!r.ready(end)) await r.fill(end);
    const [field, wire] = r.tag(end);
    if (field === 1 && wire === WIRE_VARINT) {
      elemType = r.int64(end, "elem_type");
    } else if (field === 2 && wire === WIRE_LEN) {
      const shapeEnd = r.message(end, depth, "shape");
      shape ??= []; // a repeated shape field merges, as protobuf does
      await readDims(r, shapeEnd, depth + 1, shape);
    } else {
      r.skip(wire, end, field);
    }
  }
  return { type: ELEM_TYPES[elemType] ?? "unknown", shape };
}

// Sequence (4) and optional (9) hold an elem_type TypeProto in field 1, map (5) a value_type in
// field 2. They are walked only to check their structure and depth; the result is "unknown".
const NESTED_TYPE_FIELD: Readonly<Record<number, number>> = { 4: 1, 9: 1, 5: 2 };

async function readType(r: ProtoReader, end: number, depth: number): Promise<ValueType> {
  let result: ValueType = { type: "unknown", shape: null };
  while (r.pos < end) {
    if (!r.ready(end)) await r.fill(end);
    const [field, wire] = r.tag(end);
    const inner = NESTED_TYPE_FIELD[field];
    if (field === 1 && wire === WIRE_LEN) {
      result = await readTensorType(r, r.message(end, depth, "tensor_type"), depth + 1);
    } else if (inner !== undefined && wire === WIRE_LEN) {
      result = { type: "unknown", shape: null };
      const holderEnd = r.message(end, depth, "container type");
      while (r.pos < holderEnd) {
        if (!r.ready(holderEnd)) await r.fill(holderEnd);
        const [f, w] = r.tag(holderEnd);
        if (f === inner && w === WIRE_LEN) await readType(r, r.message(holderEnd, depth + 1, "element type"), depth + 2);
        else r.skip(w, holderEnd, f);
      }
    } else {
      if (wire === WIRE_LEN && (field === 7 || field === 8)) result = { type: "unknown", shape: null }; // opaque, sparse tensor
      r.skip(wire, end, field);
    }
  }
  return result;
}

async function readValueInfo(r: ProtoReader, end: number, depth: number): Promise<OnnxValueInfo> {
  let name = "";
  let type: ValueType = { type: "unknown", shape: null };
  while (r.pos < end) {
    if (!r.ready(end)) await r.fill(end);
    const [field, wire] = r.tag(end);
    if (field === 1 && wire === WIRE_LEN) name = await r.string(end, "value name");
    else if (field === 2 && wire === WIRE_LEN) type = await readType(r, r.message(end, depth, "type"), depth + 1);
    else r.skip(wire, end, field);
  }
  return { name, ...type };
}

/** TensorProto.name (8), skipping everything else (raw_data and the typed data fields) by position. */
async function readTensorName(r: ProtoReader, end: number): Promise<string | undefined> {
  let name: string | undefined;
  while (r.pos < end) {
    if (!r.ready(end)) await r.fill(end);
    const [field, wire] = r.tag(end);
    if (field === 8 && wire === WIRE_LEN) name = await r.string(end, "initializer name");
    else r.skip(wire, end, field);
  }
  return name;
}

/** SparseTensorProto names itself through its values tensor (field 1). */
async function readSparseName(r: ProtoReader, end: number, depth: number): Promise<string | undefined> {
  let name: string | undefined;
  while (r.pos < end) {
    if (!r.ready(end)) await r.fill(end);
    const [field, wire] = r.tag(end);
    if (field === 1 && wire === WIRE_LEN) name = await readTensorName(r, r.message(end, depth, "sparse values"));
    else r.skip(wire, end, field);
  }
  return name;
}

async function readGraph(r: ProtoReader, end: number, depth: number, g: Graph): Promise<void> {
  while (r.pos < end) {
    if (!r.ready(end)) await r.fill(end);
    const [field, wire] = r.tag(end);
    if (wire !== WIRE_LEN) { r.skip(wire, end, field); continue; }
    if (field === 1) {
      g.nodeCount++;
      r.skip(wire, end, field);
    } else if (field === 5 || field === 15) {
      g.initializerCount++;
      const tensorEnd = r.message(end, depth, "initializer");
      const name = field === 5 ? await readTensorName(r, tensorEnd) : await readSparseName(r, tensorEnd, depth + 1);
      if (name !== undefined) g.initializerNames.add(name);
    } else if (field === 11 || field === 12) {
      const list = field === 11 ? g.inputs : g.outputs;
      if (list.length >= g.maxValueInfos) throw tooMany(field === 11 ? "graph inputs" : "graph outputs", g.maxValueInfos);
      list.push(await readValueInfo(r, r.message(end, depth, "value info"), depth + 1));
    } else {
      const at = r.pos;
      r.skip(wire, end, field);
      if (!GRAPH_PARTS.has(field)) g.unaccounted += r.pos - at;
    }
  }
}

async function readStringPair(r: ProtoReader, end: number): Promise<[string, string]> {
  let key = "";
  let value = "";
  while (r.pos < end) {
    if (!r.ready(end)) await r.fill(end);
    const [field, wire] = r.tag(end);
    if (field === 1 && wire === WIRE_LEN) key = await r.string(end, "metadata key");
    else if (field === 2 && wire === WIRE_LEN) value = await r.string(end, "metadata value");
    else r.skip(wire, end, field);
  }
  return [key, value];
}

async function readOpset(r: ProtoReader, end: number): Promise<OnnxOpset> {
  const opset: OnnxOpset = { domain: "", version: 0 };
  while (r.pos < end) {
    if (!r.ready(end)) await r.fill(end);
    const [field, wire] = r.tag(end);
    if (field === 1 && wire === WIRE_LEN) opset.domain = await r.string(end, "opset domain");
    else if (field === 2 && wire === WIRE_VARINT) opset.version = r.int64(end, "opset version");
    else r.skip(wire, end, field);
  }
  return opset;
}

// ModelProto fields read here, with the wire type each must have; one of these seen at the top
// level is what makes a file look like protobuf at all.
const MODEL_FIELDS: Readonly<Record<number, number>> = { 1: WIRE_VARINT, 2: WIRE_LEN, 3: WIRE_LEN, 7: WIRE_LEN, 8: WIRE_LEN, 14: WIRE_LEN };

async function readModel(r: ProtoReader, maxValueInfos: number): Promise<Omit<OnnxHeader, "fileSize">> {
  const end = r.fileSize;
  const g: Graph = { maxValueInfos, nodeCount: 0, initializerCount: 0, initializerNames: new Set(), inputs: [], outputs: [], unaccounted: 0 };
  let irVersion: number | undefined;
  let producerName: string | undefined;
  let producerVersion: string | undefined;
  const opsets: OnnxOpset[] = [];
  const metadata = Object.create(null) as Record<string, string>;
  let metadataCount = 0;
  let sawGraph = false;
  let recognized = false;
  try {
    while (r.pos < end) {
      if (!r.ready(end)) await r.fill(end);
      const [field, wire] = r.tag(end);
      if (MODEL_FIELDS[field] !== wire) {
        const at = r.pos;
        r.skip(wire, end, field);
        if (!MODEL_PARTS.has(field)) g.unaccounted += r.pos - at;
        continue;
      }
      recognized = true;
      if (field === 1) {
        irVersion = r.int64(end, "ir_version");
      } else if (field === 2) {
        producerName = await r.string(end, "producer_name");
      } else if (field === 3) {
        producerVersion = await r.string(end, "producer_version");
      } else if (field === 7) {
        sawGraph = true; // a repeated graph field merges into one, as protobuf does
        await readGraph(r, r.message(end, 1, "graph"), 2, g);
      } else if (field === 8) {
        if (opsets.length >= MAX_OPSETS) throw tooMany("opset imports", MAX_OPSETS);
        opsets.push(await readOpset(r, r.message(end, 1, "opset_import")));
      } else {
        if (++metadataCount > MAX_METADATA) throw tooMany("metadata entries", MAX_METADATA);
        const [key, value] = await readStringPair(r, r.message(end, 1, "metadata_props"));
        metadata[key] = value;
      }
    }
  } catch (err) {
    if (recognized || !(err instanceof OnnxFormatError)) throw err;
    throw new OnnxFormatError("not_protobuf", `not an ONNX model: ${err.message}`);
  }
  if (!recognized) throw new OnnxFormatError("not_protobuf", "not an ONNX model: no ModelProto field found");
  if (!sawGraph) throw new OnnxFormatError("no_graph", "the model has no graph");
  if (g.unaccounted > MAX_UNACCOUNTED_BYTES) {
    throw new OnnxFormatError("unaccounted_data", `${g.unaccounted} bytes of the file are neither graph, weights nor metadata (at most ${MAX_UNACCOUNTED_BYTES})`);
  }
  // onnxruntime refuses both of these too ("Missing model IR version", "Missing opset in the model").
  if (irVersion === undefined) throw new OnnxFormatError("no_ir_version", "the model has no ir_version");
  if (opsets.length === 0) throw new OnnxFormatError("no_opset", "the model imports no opset");
  // Graph inputs that are also initializers are overridable constants, not inputs a caller must
  // feed (old IR versions list every initializer as an input); onnxruntime leaves them out too.
  const inputs = g.inputs.filter((v) => !g.initializerNames.has(v.name));
  return {
    irVersion,
    ...(producerName === undefined ? {} : { producerName }),
    ...(producerVersion === undefined ? {} : { producerVersion }),
    opsets, inputs, outputs: g.outputs, metadata, nodeCount: g.nodeCount, initializerCount: g.initializerCount,
  };
}

/** Reads an ONNX model's signature without its weights; throws OnnxFormatError on a malformed file. */
export async function readOnnxHeader(filePath: string, opts: ReadOnnxOptions = {}): Promise<OnnxHeader> {
  const fh = await open(filePath, "r");
  try {
    const { size } = await fh.stat();
    if (size === 0) throw new OnnxFormatError("empty_file", "file is empty");
    const r = new ProtoReader(fh, size, opts.maxStringBytes ?? 64 * 1024 * 1024);
    const header = await readModel(r, opts.maxValueInfos ?? 10_000);
    return { ...header, fileSize: size };
  } finally {
    await fh.close();
  }
}
