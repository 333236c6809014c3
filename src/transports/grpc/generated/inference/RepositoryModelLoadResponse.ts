// Original file: proto/inference.proto


export interface RepositoryModelLoadResponse {
}

export interface RepositoryModelLoadResponse__Output {
}
