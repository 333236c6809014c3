// Original file: proto/inference.proto


export interface RepositoryModelUnloadResponse {
}

export interface RepositoryModelUnloadResponse__Output {
}
