// tensorflow.ServerDef for TFE_EnableCollectiveOps, written with google-protobuf's binary writer (the message is four
// fields deep; no generated code needed). Field numbers from tensorflow/core/protobuf/tensorflow_server.proto and
// config.proto (TensorFlow 2.21):
//   ServerDef { ClusterDef cluster = 1; string job_name = 2; int32 task_index = 3; ConfigProto default_session_config = 4;
//               string protocol = 5; }
//   ClusterDef { repeated JobDef job = 1; }   JobDef { string name = 1; map<int32, string> tasks = 2; }
//   ConfigProto { Experimental experimental = 16; }   ConfigProto.Experimental { string collective_group_leader = 1; }
// Without collective_group_leader the workers never agree on a group and every collective times out.
import { createRequire } from 'node:module';
import { taskName, type ClusterSpec } from './cluster.js';

interface BinaryWriter {
  writeString(field: number, value: string): void;
  writeInt32(field: number, value: number): void;
  writeMessage<T>(field: number, value: T, write: (value: T, writer: BinaryWriter) => void): void;
  getResultBuffer(): Uint8Array;
}
const require = createRequire(import.meta.url);
const { BinaryWriter: Writer } = require('google-protobuf') as { BinaryWriter: new () => BinaryWriter };

// (writeMessage skips a null value, so the two nested configs are written from empty objects.)
export function serverDef(cluster: ClusterSpec): Uint8Array {
  const w = new Writer();
  w.writeMessage(1, cluster.workers, (workers, cw) => {
    cw.writeMessage(1, workers, (ws, jw) => {
      jw.writeString(1, 'worker');
      ws.forEach((address, i) => jw.writeMessage(2, address, (a, ew) => {
        ew.writeInt32(1, i);
        ew.writeString(2, a);
      }));
    });
  });
  w.writeString(2, 'worker');
  w.writeInt32(3, cluster.task);
  w.writeMessage(4, {}, (_, config) => {
    config.writeMessage(16, {}, (__, experimental) => experimental.writeString(1, taskName(0)));
  });
  w.writeString(5, 'grpc');
  return w.getResultBuffer();
}
