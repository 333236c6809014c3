// Original file: proto/inference.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { ModelInferRequest as _inference_ModelInferRequest, ModelInferRequest__Output as _inference_ModelInferRequest__Output } from '../inference/ModelInferRequest.js';
import type { ModelInferResponse as _inference_ModelInferResponse, ModelInferResponse__Output as _inference_ModelInferResponse__Output } from '../inference/ModelInferResponse.js';
import type { ModelMetadataRequest as _inference_ModelMetadataRequest, ModelMetadataRequest__Output as _inference_ModelMetadataRequest__Output } from '../inference/ModelMetadataRequest.js';
import type { ModelMetadataResponse as _inference_ModelMetadataResponse, ModelMetadataResponse__Output as _inference_ModelMetadataResponse__Output } from '../inference/ModelMetadataResponse.js';
import type { ModelReadyRequest as _inference_ModelReadyRequest, ModelReadyRequest__Output as _inference_ModelReadyRequest__Output } from '../inference/ModelReadyRequest.js';
import type { ModelReadyResponse as _inference_ModelReadyResponse, ModelReadyResponse__Output as _inference_ModelReadyResponse__Output } from '../inference/ModelReadyResponse.js';
import type { ModelStatisticsRequest as _inference_ModelStatisticsRequest, ModelStatisticsRequest__Output as _inference_ModelStatisticsRequest__Output } from '../inference/ModelStatisticsRequest.js';
import type { ModelStatisticsResponse as _inference_ModelStatisticsResponse, ModelStatisticsResponse__Output as _inference_ModelStatisticsResponse__Output } from '../inference/ModelStatisticsResponse.js';
import type { ModelStreamInferResponse as _inference_ModelStreamInferResponse, ModelStreamInferResponse__Output as _inference_ModelStreamInferResponse__Output } from '../inference/ModelStreamInferResponse.js';
import type { RepositoryIndexRequest as _inference_RepositoryIndexRequest, RepositoryIndexRequest__Output as _inference_RepositoryIndexRequest__Output } from '../inference/RepositoryIndexRequest.js';
import type { RepositoryIndexResponse as _inference_RepositoryIndexResponse, RepositoryIndexResponse__Output as _inference_RepositoryIndexResponse__Output } from '../inference/RepositoryIndexResponse.js';
import type { RepositoryModelLoadRequest as _inference_RepositoryModelLoadRequest, RepositoryModelLoadRequest__Output as _inference_RepositoryModelLoadRequest__Output } from '../inference/RepositoryModelLoadRequest.js';
import type { RepositoryModelLoadResponse as _inference_RepositoryModelLoadResponse, RepositoryModelLoadResponse__Output as _inference_RepositoryModelLoadResponse__Output } from '../inference/RepositoryModelLoadResponse.js';
import type { RepositoryModelUnloadRequest as _inference_RepositoryModelUnloadRequest, RepositoryModelUnloadRequest__Output as _inference_RepositoryModelUnloadRequest__Output } from '../inference/RepositoryModelUnloadRequest.js';
import type { RepositoryModelUnloadResponse as _inference_RepositoryModelUnloadResponse, RepositoryModelUnloadResponse__Output as _inference_RepositoryModelUnloadResponse__Output } from '../inference/RepositoryModelUnloadResponse.js';
import type { ServerLiveRequest as _inference_ServerLiveRequest, ServerLiveRequest__Output as _inference_ServerLiveRequest__Output } from '../inference/ServerLiveRequest.js';
import type { ServerLiveResponse as _inference_ServerLiveResponse, ServerLiveResponse__Output as _inference_ServerLiveResponse__Output } from '../inference/ServerLiveResponse.js';
import type { ServerMetadataRequest as _inference_ServerMetadataRequest, ServerMetadataRequest__Output as _inference_ServerMetadataRequest__Output } from '../inference/ServerMetadataRequest.js';
import type { ServerMetadataResponse as _inference_ServerMetadataResponse, ServerMetadataResponse__Output as _inference_ServerMetadataResponse__Output } from '../inference/ServerMetadataResponse.js';
import type { ServerReadyRequest as _inference_ServerReadyRequest, ServerReadyRequest__Output as _inference_ServerReadyRequest__Output } from '../inference/ServerReadyRequest.js';
import type { ServerReadyResponse as _inference_ServerReadyResponse, ServerReadyResponse__Output as _inference_ServerReadyResponse__Output } from '../inference/ServerReadyResponse.js';

export interface GRPCInferenceServiceClient extends grpc.Client {
  ModelInfer(argument: _inference_ModelInferRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ModelInferResponse__Output>): grpc.ClientUnaryCall;
  ModelInfer(argument: _inference_ModelInferRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_ModelInferResponse__Output>): grpc.ClientUnaryCall;
  ModelInfer(argument: _inference_ModelInferRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ModelInferResponse__Output>): grpc.ClientUnaryCall;
  ModelInfer(argument: _inference_ModelInferRequest, callback: grpc.requestCallback<_inference_ModelInferResponse__Output>): grpc.ClientUnaryCall;
  modelInfer(argument: _inference_ModelInferRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ModelInferResponse__Output>): grpc.ClientUnaryCall;
  modelInfer(argument: _inference_ModelInferRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_ModelInferResponse__Output>): grpc.ClientUnaryCall;
  modelInfer(argument: _inference_ModelInferRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ModelInferResponse__Output>): grpc.ClientUnaryCall;
  modelInfer(argument: _inference_ModelInferRequest, callback: grpc.requestCallback<_inference_ModelInferResponse__Output>): grpc.ClientUnaryCall;
  
  ModelMetadata(argument: _inference_ModelMetadataRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ModelMetadataResponse__Output>): grpc.ClientUnaryCall;
  ModelMetadata(argument: _inference_ModelMetadataRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_ModelMetadataResponse__Output>): grpc.ClientUnaryCall;
  ModelMetadata(argument: _inference_ModelMetadataRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ModelMetadataResponse__Output>): grpc.ClientUnaryCall;
  ModelMetadata(argument: _inference_ModelMetadataRequest, callback: grpc.requestCallback<_inference_ModelMetadataResponse__Output>): grpc.ClientUnaryCall;
  modelMetadata(argument: _inference_ModelMetadataRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ModelMetadataResponse__Output>): grpc.ClientUnaryCall;
  modelMetadata(argument: _inference_ModelMetadataRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_ModelMetadataResponse__Output>): grpc.ClientUnaryCall;
  modelMetadata(argument: _inference_ModelMetadataRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ModelMetadataResponse__Output>): grpc.ClientUnaryCall;
  modelMetadata(argument: _inference_ModelMetadataRequest, callback: grpc.requestCallback<_inference_ModelMetadataResponse__Output>): grpc.ClientUnaryCall;
  
  ModelReady(argument: _inference_ModelReadyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ModelReadyResponse__Output>): grpc.ClientUnaryCall;
  ModelReady(argument: _inference_ModelReadyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_ModelReadyResponse__Output>): grpc.ClientUnaryCall;
  ModelReady(argument: _inference_ModelReadyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ModelReadyResponse__Output>): grpc.ClientUnaryCall;
  ModelReady(argument: _inference_ModelReadyRequest, callback: grpc.requestCallback<_inference_ModelReadyResponse__Output>): grpc.ClientUnaryCall;
  modelReady(argument: _inference_ModelReadyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ModelReadyResponse__Output>): grpc.ClientUnaryCall;
  modelReady(argument: _inference_ModelReadyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_ModelReadyResponse__Output>): grpc.ClientUnaryCall;
  modelReady(argument: _inference_ModelReadyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ModelReadyResponse__Output>): grpc.ClientUnaryCall;
  modelReady(argument: _inference_ModelReadyRequest, callback: grpc.requestCallback<_inference_ModelReadyResponse__Output>): grpc.ClientUnaryCall;
  
  ModelStatistics(argument: _inference_ModelStatisticsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ModelStatisticsResponse__Output>): grpc.ClientUnaryCall;
  ModelStatistics(argument: _inference_ModelStatisticsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_ModelStatisticsResponse__Output>): grpc.ClientUnaryCall;
  ModelStatistics(argument: _inference_ModelStatisticsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ModelStatisticsResponse__Output>): grpc.ClientUnaryCall;
  ModelStatistics(argument: _inference_ModelStatisticsRequest, callback: grpc.requestCallback<_inference_ModelStatisticsResponse__Output>): grpc.ClientUnaryCall;
  modelStatistics(argument: _inference_ModelStatisticsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ModelStatisticsResponse__Output>): grpc.ClientUnaryCall;
  modelStatistics(argument: _inference_ModelStatisticsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_ModelStatisticsResponse__Output>): grpc.ClientUnaryCall;
  modelStatistics(argument: _inference_ModelStatisticsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ModelStatisticsResponse__Output>): grpc.ClientUnaryCall;
  modelStatistics(argument: _inference_ModelStatisticsRequest, callback: grpc.requestCallback<_inference_ModelStatisticsResponse__Output>): grpc.ClientUnaryCall;
  
  ModelStreamInfer(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_inference_ModelInferRequest, _inference_ModelStreamInferResponse__Output>;
  ModelStreamInfer(options?: grpc.CallOptions): grpc.ClientDuplexStream<_inference_ModelInferRequest, _inference_ModelStreamInferResponse__Output>;
  modelStreamInfer(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_inference_ModelInferRequest, _inference_ModelStreamInferResponse__Output>;
  modelStreamInfer(options?: grpc.CallOptions): grpc.ClientDuplexStream<_inference_ModelInferRequest, _inference_ModelStreamInferResponse__Output>;
  
  RepositoryIndex(argument: _inference_RepositoryIndexRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_RepositoryIndexResponse__Output>): grpc.ClientUnaryCall;
  RepositoryIndex(argument: _inference_RepositoryIndexRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_RepositoryIndexResponse__Output>): grpc.ClientUnaryCall;
  RepositoryIndex(argument: _inference_RepositoryIndexRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_RepositoryIndexResponse__Output>): grpc.ClientUnaryCall;
  RepositoryIndex(argument: _inference_RepositoryIndexRequest, callback: grpc.requestCallback<_inference_RepositoryIndexResponse__Output>): grpc.ClientUnaryCall;
  repositoryIndex(argument: _inference_RepositoryIndexRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_RepositoryIndexResponse__Output>): grpc.ClientUnaryCall;
  repositoryIndex(argument: _inference_RepositoryIndexRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_RepositoryIndexResponse__Output>): grpc.ClientUnaryCall;
  repositoryIndex(argument: _inference_RepositoryIndexRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_RepositoryIndexResponse__Output>): grpc.ClientUnaryCall;
  repositoryIndex(argument: _inference_RepositoryIndexRequest, callback: grpc.requestCallback<_inference_RepositoryIndexResponse__Output>): grpc.ClientUnaryCall;
  
  RepositoryModelLoad(argument: _inference_RepositoryModelLoadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_RepositoryModelLoadResponse__Output>): grpc.ClientUnaryCall;
  RepositoryModelLoad(argument: _inference_RepositoryModelLoadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_RepositoryModelLoadResponse__Output>): grpc.ClientUnaryCall;
  RepositoryModelLoad(argument: _inference_RepositoryModelLoadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_RepositoryModelLoadResponse__Output>): grpc.ClientUnaryCall;
  RepositoryModelLoad(argument: _inference_RepositoryModelLoadRequest, callback: grpc.requestCallback<_inference_RepositoryModelLoadResponse__Output>): grpc.ClientUnaryCall;
  repositoryModelLoad(argument: _inference_RepositoryModelLoadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_RepositoryModelLoadResponse__Output>): grpc.ClientUnaryCall;
  repositoryModelLoad(argument: _inference_RepositoryModelLoadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_RepositoryModelLoadResponse__Output>): grpc.ClientUnaryCall;
  repositoryModelLoad(argument: _inference_RepositoryModelLoadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_RepositoryModelLoadResponse__Output>): grpc.ClientUnaryCall;
  repositoryModelLoad(argument: _inference_RepositoryModelLoadRequest, callback: grpc.requestCallback<_inference_RepositoryModelLoadResponse__Output>): grpc.ClientUnaryCall;
  
  RepositoryModelUnload(argument: _inference_RepositoryModelUnloadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_RepositoryModelUnloadResponse__Output>): grpc.ClientUnaryCall;
  RepositoryModelUnload(argument: _inference_RepositoryModelUnloadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_RepositoryModelUnloadResponse__Output>): grpc.ClientUnaryCall;
  RepositoryModelUnload(argument: _inference_RepositoryModelUnloadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_RepositoryModelUnloadResponse__Output>): grpc.ClientUnaryCall;
  RepositoryModelUnload(argument: _inference_RepositoryModelUnloadRequest, callback: grpc.requestCallback<_inference_RepositoryModelUnloadResponse__Output>): grpc.ClientUnaryCall;
  repositoryModelUnload(argument: _inference_RepositoryModelUnloadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_RepositoryModelUnloadResponse__Output>): grpc.ClientUnaryCall;
  repositoryModelUnload(argument: _inference_RepositoryModelUnloadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_RepositoryModelUnloadResponse__Output>): grpc.ClientUnaryCall;
  repositoryModelUnload(argument: _inference_RepositoryModelUnloadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_RepositoryModelUnloadResponse__Output>): grpc.ClientUnaryCall;
  repositoryModelUnload(argument: _inference_RepositoryModelUnloadRequest, callback: grpc.requestCallback<_inference_RepositoryModelUnloadResponse__Output>): grpc.ClientUnaryCall;
  
  ServerLive(argument: _inference_ServerLiveRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ServerLiveResponse__Output>): grpc.ClientUnaryCall;
  ServerLive(argument: _inference_ServerLiveRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_ServerLiveResponse__Output>): grpc.ClientUnaryCall;
  ServerLive(argument: _inference_ServerLiveRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ServerLiveResponse__Output>): grpc.ClientUnaryCall;
  ServerLive(argument: _inference_ServerLiveRequest, callback: grpc.requestCallback<_inference_ServerLiveResponse__Output>): grpc.ClientUnaryCall;
  serverLive(argument: _inference_ServerLiveRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ServerLiveResponse__Output>): grpc.ClientUnaryCall;
  serverLive(argument: _inference_ServerLiveRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_ServerLiveResponse__Output>): grpc.ClientUnaryCall;
  serverLive(argument: _inference_ServerLiveRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ServerLiveResponse__Output>): grpc.ClientUnaryCall;
  serverLive(argument: _inference_ServerLiveRequest, callback: grpc.requestCallback<_inference_ServerLiveResponse__Output>): grpc.ClientUnaryCall;
  
  ServerMetadata(argument: _inference_ServerMetadataRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ServerMetadataResponse__Output>): grpc.ClientUnaryCall;
  ServerMetadata(argument: _inference_ServerMetadataRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_ServerMetadataResponse__Output>): grpc.ClientUnaryCall;
  ServerMetadata(argument: _inference_ServerMetadataRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ServerMetadataResponse__Output>): grpc.ClientUnaryCall;
  ServerMetadata(argument: _inference_ServerMetadataRequest, callback: grpc.requestCallback<_inference_ServerMetadataResponse__Output>): grpc.ClientUnaryCall;
  serverMetadata(argument: _inference_ServerMetadataRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ServerMetadataResponse__Output>): grpc.ClientUnaryCall;
  serverMetadata(argument: _inference_ServerMetadataRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_ServerMetadataResponse__Output>): grpc.ClientUnaryCall;
  serverMetadata(argument: _inference_ServerMetadataRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ServerMetadataResponse__Output>): grpc.ClientUnaryCall;
  serverMetadata(argument: _inference_ServerMetadataRequest, callback: grpc.requestCallback<_inference_ServerMetadataResponse__Output>): grpc.ClientUnaryCall;
  
  ServerReady(argument: _inference_ServerReadyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ServerReadyResponse__Output>): grpc.ClientUnaryCall;
  ServerReady(argument: _inference_ServerReadyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_ServerReadyResponse__Output>): grpc.ClientUnaryCall;
  ServerReady(argument: _inference_ServerReadyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ServerReadyResponse__Output>): grpc.ClientUnaryCall;
  ServerReady(argument: _inference_ServerReadyRequest, callback: grpc.requestCallback<_inference_ServerReadyResponse__Output>): grpc.ClientUnaryCall;
  serverReady(argument: _inference_ServerReadyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ServerReadyResponse__Output>): grpc.ClientUnaryCall;
  serverReady(argument: _inference_ServerReadyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_ServerReadyResponse__Output>): grpc.ClientUnaryCall;
  serverReady(argument: _inference_ServerReadyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_ServerReadyResponse__Output>): grpc.ClientUnaryCall;
  serverReady(argument: _inference_ServerReadyRequest, callback: grpc.requestCallback<_inference_ServerReadyResponse__Output>): grpc.ClientUnaryCall;
  
}

export interface GRPCInferenceServiceHandlers extends grpc.UntypedServiceImplementation {
  ModelInfer: grpc.handleUnaryCall<_inference_ModelInferRequest__Output, _inference_ModelInferResponse>;
  
  ModelMetadata: grpc.handleUnaryCall<_inference_ModelMetadataRequest__Output, _inference_ModelMetadataResponse>;
  
  ModelReady: grpc.handleUnaryCall<_inference_ModelReadyRequest__Output, _inference_ModelReadyResponse>;
  
  ModelStatistics: grpc.handleUnaryCall<_inference_ModelStatisticsRequest__Output, _inference_ModelStatisticsResponse>;
  
  ModelStreamInfer: grpc.handleBidiStreamingCall<_inference_ModelInferRequest__Output, _inference_ModelStreamInferResponse>;
  
  RepositoryIndex: grpc.handleUnaryCall<_inference_RepositoryIndexRequest__Output, _inference_RepositoryIndexResponse>;
  
  RepositoryModelLoad: grpc.handleUnaryCall<_inference_RepositoryModelLoadRequest__Output, _inference_RepositoryModelLoadResponse>;
  
  RepositoryModelUnload: grpc.handleUnaryCall<_inference_RepositoryModelUnloadRequest__Output, _inference_RepositoryModelUnloadResponse>;
  
  ServerLive: grpc.handleUnaryCall<_inference_ServerLiveRequest__Output, _inference_ServerLiveResponse>;
  
  ServerMetadata: grpc.handleUnaryCall<_inference_ServerMetadataRequest__Output, _inference_ServerMetadataResponse>;
  
  ServerReady: grpc.handleUnaryCall<_inference_ServerReadyRequest__Output, _inference_ServerReadyResponse>;
  
}

export interface GRPCInferenceServiceDefinition extends grpc.ServiceDefinition {
  ModelInfer: MethodDefinition<_inference_ModelInferRequest, _inference_ModelInferResponse, _inference_ModelInferRequest__Output, _inference_ModelInferResponse__Output>
  ModelMetadata: MethodDefinition<_inference_ModelMetadataRequest, _inference_ModelMetadataResponse, _inference_ModelMetadataRequest__Output, _inference_ModelMetadataResponse__Output>
  ModelReady: MethodDefinition<_inference_ModelReadyRequest, _inference_ModelReadyResponse, _inference_ModelReadyRequest__Output, _inference_ModelReadyResponse__Output>
  ModelStatistics: MethodDefinition<_inference_ModelStatisticsRequest, _inference_ModelStatisticsResponse, _inference_ModelStatisticsRequest__Output, _inference_ModelStatisticsResponse__Output>
  ModelStreamInfer: MethodDefinition<_inference_ModelInferRequest, _inference_ModelStreamInferResponse, _inference_ModelInferRequest__Output, _inference_ModelStreamInferResponse__Output>
  RepositoryIndex: MethodDefinition<_inference_RepositoryIndexRequest, _inference_RepositoryIndexResponse, _inference_RepositoryIndexRequest__Output, _inference_RepositoryIndexResponse__Output>
  RepositoryModelLoad: MethodDefinition<_inference_RepositoryModelLoadRequest, _inference_RepositoryModelLoadResponse, _inference_RepositoryModelLoadRequest__Output, _inference_RepositoryModelLoadResponse__Output>
  RepositoryModelUnload: MethodDefinition<_inference_RepositoryModelUnloadRequest, _inference_RepositoryModelUnloadResponse, _inference_RepositoryModelUnloadRequest__Output, _inference_RepositoryModelUnloadResponse__Output>
  ServerLive: MethodDefinition<_inference_ServerLiveRequest, _inference_ServerLiveResponse, _inference_ServerLiveRequest__Output, _inference_ServerLiveResponse__Output>
  ServerMetadata: MethodDefinition<_inference_ServerMetadataRequest, _inference_ServerMetadataResponse, _inference_ServerMetadataRequest__Output, _inference_ServerMetadataResponse__Output>
  ServerReady: MethodDefinition<_inference_ServerReadyRequest, _inference_ServerReadyResponse, _inference_ServerReadyRequest__Output, _inference_ServerReadyResponse__Output>
}
