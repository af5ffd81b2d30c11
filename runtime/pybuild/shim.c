/*
 * shim.c: the WasmFaaS entry points of the CPython reactor module.
 *
 * The module is linked with -mexec-model=reactor, so it has no main. The host
 * (runtime/ in Go) calls, in order:
 *
 *   _initialize()          wasi-libc constructors (only for the snapshot boot)
 *   faas_init()            boot the interpreter and import pyshim (and dill)
 *   ...snapshot of linear memory and __stack_pointer is taken here...
 *   faas_alloc(n)          reserve n bytes for a request
 *   faas_run(ptr, n)       run one request; returns (result_ptr << 32 | len)
 *
 * A restored instance starts at faas_alloc/faas_run: it never runs
 * _initialize or faas_init again, because their effects are in the image.
 *
 * faas_main() is the `python3` command line (used by `faas python`): it reads
 * argv through WASI and runs Py_RunMain with the same isolated configuration.
 */
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

#define EXPORT(name) __attribute__((export_name(#name)))

/*
 * Extension modules linked into the module beside CPython's own (for
 * example numpy's), registered as built-ins under their dotted names. The
 * recipe links a table named faas_extra_inittab when it has any; without one
 * the weak reference is NULL.
 */
extern struct _inittab faas_extra_inittab[] __attribute__((weak));

/*
 * CPython 3.11's BuiltinImporter declines submodules (it returns None when
 * given a parent package's __path__), so a dotted built-in such as
 * numpy.core._multiarray_umath needs a finder of its own: it answers for
 * exactly the dotted names in the built-in table, ahead of the path finder.
 */
static const char dotted_finder[] =
    "import sys, _imp\n"
    "from importlib.machinery import BuiltinImporter, ModuleSpec\n"
    "class DottedBuiltinFinder:\n"
    "    names = frozenset(n for n in sys.builtin_module_names if '.' in n)\n"
    "    @classmethod\n"
    "    def find_spec(cls, name, path=None, target=None):\n"
    "        if name in cls.names:\n"
    "            return ModuleSpec(name, BuiltinImporter, origin='built-in')\n"
    "        return None\n"
    "    @classmethod\n"
    "    def invalidate_caches(cls):\n"
    "        pass\n"
    "sys.meta_path.insert(0, DottedBuiltinFinder)\n";

static int
add_builtins(void)
{
    static int done;
    if (done || faas_extra_inittab == NULL) return 0;
    done = 1;
    return PyImport_ExtendInittab(faas_extra_inittab);
}

/* Returns 0 on success; else a Python exception is set. */
static int
install_dotted_finder(void)
{
    if (faas_extra_inittab == NULL) return 0;
    PyObject *globals = PyDict_New();
    if (globals == NULL) return -1;
    PyObject *name = PyUnicode_FromString("faas_shim");
    if (name == NULL || PyDict_SetItemString(globals, "__name__", name) < 0 ||
        PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0) {
        Py_XDECREF(name);
        Py_DECREF(globals);
        return -1;
    }
    Py_DECREF(name);
    PyObject *r = PyRun_String(dotted_finder, Py_file_input, globals, globals);
    Py_DECREF(globals);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *host_run;      /* pyshim._host_run */
static PyObject *last_result;   /* kept alive until the next call */
static char fatal_buf[512];

static PyStatus
configure(PyConfig *config)
{
    PyStatus st;
    if (add_builtins() < 0) return PyStatus_NoMemory();
    PyConfig_InitIsolatedConfig(config);
    config->site_import = 0;
    config->write_bytecode = 0;
    config->install_signal_handlers = 0;
    /* Unbuffered: a function's prints reach the host as they happen, so
       output written before a timeout is still reported. */
    config->buffered_stdio = 0;
    config->pathconfig_warnings = 0;
    st = PyConfig_SetString(config, &config->home, L"/usr/local");
    if (PyStatus_Exception(st)) return st;
    st = PyConfig_SetString(config, &config->program_name, L"python3");
    if (PyStatus_Exception(st)) return st;
    st = PyConfig_SetString(config, &config->stdio_encoding, L"utf-8");
    if (PyStatus_Exception(st)) return st;
    st = PyConfig_SetString(config, &config->stdio_errors, L"backslashreplace");
    if (PyStatus_Exception(st)) return st;
    config->module_search_paths_set = 1;
    static const wchar_t *paths[] = {
        L"/usr/local/lib/python3.11",
        L"/usr/local/lib/python3.11/lib-dynload",
        L"/usr/local/lib/python3.11/site-packages",
        L"/faas",
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        st = PyWideStringList_Append(&config->module_search_paths, paths[i]);
        if (PyStatus_Exception(st)) return st;
    }
    return PyStatus_Ok();
}

/* Returns 0 on success. On failure the reason is written to stderr. */
EXPORT(faas_init) int
faas_init(void)
{
    PyConfig config;
    PyStatus st = configure(&config);
    if (!PyStatus_Exception(st)) {
        st = Py_InitializeFromConfig(&config);
    }
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        fprintf(stderr, "faas_init: %s: %s\n", st.func ? st.func : "init",
                st.err_msg ? st.err_msg : "failed");
        return 1;
    }
    if (install_dotted_finder() < 0) {
        PyErr_Print();
        return 2;
    }
    PyObject *mod = PyImport_ImportModule("pyshim");
    if (mod == NULL) {
        PyErr_Print();
        return 2;
    }
    host_run = PyObject_GetAttrString(mod, "_host_run");
    Py_DECREF(mod);
    if (host_run == NULL) {
        PyErr_Print();
        return 3;
    }
    fflush(stdout);
    fflush(stderr);
    return 0;
}

EXPORT(faas_alloc) void *
faas_alloc(uint32_t n)
{
    return malloc(n ? n : 1);
}

/*
 * Runs one request held in buf[0:n] (the buffer came from faas_alloc and is
 * freed here). The reply stays valid until the next faas_run call.
 * Returns 0 when even the error path failed (the host treats it as a crash).
 */
EXPORT(faas_run) uint64_t
faas_run(char *buf, uint32_t n)
{
    Py_CLEAR(last_result);
    PyObject *arg = PyBytes_FromStringAndSize(buf, n);
    free(buf);
    if (arg == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyObject *res = PyObject_CallOneArg(host_run, arg);
    Py_DECREF(arg);
    if (res == NULL || !PyBytes_Check(res)) {
        /* pyshim catches everything it can; reaching here means the
           interpreter itself failed (for example MemoryError while
           building the reply). */
        Py_XDECREF(res);
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        const char *name = type ? ((PyTypeObject *)type)->tp_name : "unknown";
        snprintf(fatal_buf, sizeof(fatal_buf), "%s", name);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        PyErr_Clear();
        /* High bit set: fatal_buf holds the name of the failure. */
        return ((uint64_t)(uintptr_t)fatal_buf << 32) | (uint64_t)strlen(fatal_buf) | (1ull << 31);
    }
    last_result = res;
    return ((uint64_t)(uintptr_t)PyBytes_AS_STRING(res) << 32) |
           (uint64_t)PyBytes_GET_SIZE(res);
}

/* The python3 command line, for `faas python`. */
EXPORT(faas_main) int
faas_main(void)
{
    __wasi_size_t argc = 0, bufsize = 0;
    if (__wasi_args_sizes_get(&argc, &bufsize) != 0) return 120;
    char **argv = calloc(argc + 1, sizeof(char *));
    char *argbuf = malloc(bufsize ? bufsize : 1);
    if (argv == NULL || argbuf == NULL) return 120;
    if (__wasi_args_get((uint8_t **)argv, (uint8_t *)argbuf) != 0) return 120;

    PyConfig config;
    PyStatus st = configure(&config);
    if (!PyStatus_Exception(st)) {
        config.parse_argv = 1;
        config.site_import = 1;
        config.buffered_stdio = 1;
        st = PyConfig_SetBytesArgv(&config, (Py_ssize_t)argc, argv);
    }
    if (!PyStatus_Exception(st)) {
        st = Py_InitializeFromConfig(&config);
    }
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        if (PyStatus_IsExit(st)) return st.exitcode;
        Py_ExitStatusException(st);
    }
    if (install_dotted_finder() < 0) {
        PyErr_Print();
        return 120;
    }
    return Py_RunMain();
}
