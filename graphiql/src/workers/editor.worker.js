// Monaco's base worker (diffs, word suggestions) for editors without a language worker.
import 'monaco-editor/esm/vs/editor/editor.worker.js';
