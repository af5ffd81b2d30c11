// Package pickle is everything the host knows about Python pickles, without
// ever running one:
//
//   - the reader (pickle.go, opcodes.go, pickle_text.go): a structural
//     inspector that walks a pickle stream opcode by opcode, the way
//     CPython's unpickler would, and says what it would load (a function
//     by value, a reference to a module attribute, plain data) and which
//     modules it would import, so that the API can refuse a payload the
//     sandbox cannot load (CheckFunction, CheckArgs; modules.go knows what
//     the sandbox has). It is tested against CPython's own unpickler on
//     every fixture and under fuzzing;
//   - the describer (describe.go): repr() of the value a pickle of plain
//     data (and built-in exceptions) loads to, rendered from the opcode
//     stream without loading it, for the dashboard's view of a result;
//     anything else is only named ("a pickled function");
//   - the writer (writer.go): the exception pickles of platform failures
//     and the payloads of source-text functions and JSON arguments;
//   - the base64 text payloads travel as, and their hashes (base64.go).
//
// Unpickling untrusted data executes code, so only a sandbox unpickles;
// api, store, dispatch and runtime use this package to check, build and
// carry pickles.
package pickle
