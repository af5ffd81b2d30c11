"""sqlite3 (:memory: and a file under /tmp), bz2 and lzma in the sandbox.

    bin/faas python - < runtime/pybuild/libs_check.py
"""
import sqlite3, bz2, lzma, os, time, zlib
def db(path):
    t = time.perf_counter()
    con = sqlite3.connect(path)
    con.execute("create table t (id integer primary key, name text, v real)")
    with con:
        con.executemany("insert into t (name, v) values (?, ?)", ((f"n{i}", i * 0.5) for i in range(10000)))
    n, s = con.execute("select count(*), sum(v) from t").fetchone()
    row = con.execute("select name from t where id = 5000").fetchone()
    con.execute("create index ix on t(name)")
    q = con.execute("select id from t where name = 'n1234'").fetchone()
    con.close()
    if path != ":memory:":
        con = sqlite3.connect(path)
        n2 = con.execute("select count(*) from t").fetchone()[0]
        con.close()
        size = os.path.getsize(path)
    else:
        n2, size = n, 0
    assert (n, s, row[0], q[0], n2) == (10000, 24997500.0, "n4999", 1235, 10000)
    print(f"{path}: rows={n} sum={s} id5000={row[0]} n1234->{q[0]} reopened={n2} size={size} {1000*(time.perf_counter()-t):.0f} ms")
db(":memory:")
db("/tmp/t.db")
print("journal files left:", [f for f in os.listdir("/tmp")])
data = os.urandom(1000) * 300 + b"hello" * 10000
for name, mod in (("bz2", bz2), ("lzma", lzma), ("zlib", zlib)):
    c = mod.compress(data)
    assert mod.decompress(c) == data
    print(name, len(data), "->", len(c), "round trip ok")
with lzma.open("/tmp/x.xz", "wb") as f: f.write(data)
with lzma.open("/tmp/x.xz") as f: assert f.read() == data
with bz2.open("/tmp/x.bz2", "wb") as f: f.write(data)
with bz2.open("/tmp/x.bz2") as f: assert f.read() == data
print("lzma.open/bz2.open files ok; xz formats:", lzma.is_check_supported(lzma.CHECK_SHA256), lzma.compress(b"x", format=lzma.FORMAT_ALONE)[:3])
con = sqlite3.connect(":memory:")
print("fts5:", con.execute("create virtual table f using fts5(body)") is not None, "math:", con.execute("select sqrt(16), json_extract('[1,2]', '$[1]')").fetchone())
print("vfs default unix-none; file uri vfs=unix:", end=" ")
try:
    c = sqlite3.connect("file:/tmp/u.db?vfs=unix", uri=True); c.execute("create table a(x)"); c.execute("insert into a values(1)"); c.commit(); print("ok")
except Exception as e: print(type(e).__name__, e)
