// monaco-graphql's worker: validation and completion of operations against the schema.
import 'monaco-graphql/esm/graphql.worker.js';
