// Original file: proto/inference.proto


export interface ServerMetadataRequest {
}

export interface ServerMetadataRequest__Output {
}
