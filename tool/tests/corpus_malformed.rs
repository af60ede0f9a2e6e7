//! The malformed-input corpus: every file a user writes (variants, notes, bench.toml) and
//! every option value, broken the ways people break them. Each case runs the real binary
//! on its own copy of the workspace and must end with exit 2, one `Error:` (or clap's
//! `error:`) that names the file and line or the value, and what would be right; never a
//! panic, a backtrace or a hang.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// One change to the workspace before the command runs.
enum Edit {
    /// Replace the first occurrence of a text in a file (the text must be there).
    Replace(&'static str, &'static str, &'static str),
    /// Append bytes to a file.
    Append(&'static str, &'static [u8]),
    /// Write a file's whole contents.
    Write(&'static str, &'static [u8]),
    /// Run a shell command in the workspace.
    Sh(&'static str),
}

/// What the error must say.
enum Must {
    /// `FILE:LINE`, the line being where the text first occurs in the edited file.
    At(&'static str, &'static str),
    /// A piece of text.
    Says(&'static str),
}

struct Case {
    name: &'static str,
    edits: Vec<Edit>,
    args: Vec<&'static str>,
    must: Vec<Must>,
}

use Edit::*;
use Must::*;

const V: &str = "variants/c-v2.toml";
const N: &str = "notes/2026-05-07-b-baseline-4mb.md";
const P: &str = "notes/2026-05-08-c-v2-phase4-plan.md";
const T: &str = "bench.toml";

fn case(name: &'static str, edits: Vec<Edit>, args: &[&'static str], must: Vec<Must>) -> Case {
    Case { name, edits, args: args.to_vec(), must }
}

/// A target `t` in bench.toml with the given extra lines.
fn with_target(name: &'static str, lines: &'static str, must: Vec<Must>) -> Case {
    case(
        name,
        vec![Append(T, b"\n[targets.t]\n"), Append(T, lines.as_bytes())],
        &["target", "status", "--target", "t"],
        must,
    )
}

fn variant_cases() -> Vec<Case> {
    let vs = &["variants"][..];
    vec![
        case("variant: TOML syntax", vec![Append(V, b"name = \n")], vs, vec![At(V, "name = \n"), Says("expected")]),
        case("variant: no name", vec![Replace(V, "name = \"c-v2\"\n", "")], vs, vec![Says(V), Says("`name`")]),
        case(
            "variant: name is not the file's",
            vec![Replace(V, "name = \"c-v2\"", "name = \"zz\"")],
            vs,
            vec![At(V, "name = \"zz\""), Says("zz.toml")],
        ),
        case(
            "variant: unknown field",
            vec![Replace(V, "status =", "colour = 1\nstatus =")],
            vs,
            vec![At(V, "colour = 1"), Says("unknown field `colour`")],
        ),
        case(
            "variant: parent unknown",
            vec![Replace(V, "parent = \"c-prep\"", "parent = \"c-prepp\"")],
            vs,
            vec![At(V, "parent = \"c-prepp\""), Says("did you mean `c-prep`")],
        ),
        case(
            "variant: its own parent",
            vec![Replace(V, "parent = \"c-prep\"", "parent = \"c-v2\"")],
            vs,
            vec![At(V, "parent = \"c-v2\""), Says("cycle")],
        ),
        case(
            "variant: parent cycle of two",
            vec![Replace("variants/c-prep.toml", "parent = \"b\"", "parent = \"c-v2\"")],
            vs,
            vec![Says("cycle"), Says("c-prep -> c-v2 -> c-prep")],
        ),
        case(
            "variant: unknown feature",
            vec![Replace(V, "\"c-direct-rx\"]", "\"c-direct-rxx\"]")],
            vs,
            vec![At(V, "c-direct-rxx"), Says("did you mean `c-direct-rx`")],
        ),
        case(
            "variant: features not a list",
            vec![Replace(V, "features = [", "features = \"patch-b\" #[")],
            vs,
            vec![At(V, "features = \"patch-b\""), Says("sequence")],
        ),
        case(
            "variant: unknown status",
            vec![Replace(V, "status = \"proposed\"", "status = \"great\"")],
            vs,
            vec![At(V, "status = \"great\""), Says("proposed, staged, verified, failed, superseded")],
        ),
        case(
            "variant: prediction of an unknown figure",
            vec![Replace(V, "metric = \"rx_queue_lock_per_s\"", "metric = \"rx_queue_lock\"")],
            vs,
            vec![At(V, "metric = \"rx_queue_lock\""), Says("did you mean `rx_queue_lock_per_s`")],
        ),
        case(
            "variant: prediction NaN",
            vec![Replace(V, "from = 1914", "from = nan")],
            vs,
            vec![At(V, "from = nan"), Says("not a figure")],
        ),
        case(
            "variant: prediction infinite",
            vec![Replace(V, "from = 1914", "from = inf")],
            vs,
            vec![At(V, "from = inf")],
        ),
        case(
            "variant: prediction 1e300",
            vec![Replace(V, "from = 1914", "from = 1e300")],
            vs,
            vec![At(V, "from = 1e300")],
        ),
        case(
            "variant: prediction range reversed",
            vec![Replace(V, "\"12-15%\"", "\"15-12%\"")],
            vs,
            vec![At(V, "15-12%"), Says("range low-high")],
        ),
        case("variant: prediction not a number", vec![Replace(V, "\"12-15%\"", "\"abc%\"")], vs, vec![At(V, "abc%")]),
        case("variant: prediction text as NaN", vec![Replace(V, "\"12-15%\"", "\"nan%\"")], vs, vec![At(V, "nan%")]),
        case(
            "variant: prediction confidence",
            vec![Replace(V, "confidence = \"high\"", "confidence = \"sure\"")],
            vs,
            vec![At(V, "confidence = \"sure\""), Says("high, medium, low")],
        ),
        case(
            "variant: prediction without metric",
            vec![Replace(V, "metric = \"rx_queue_lock_per_s\"\n", "")],
            vs,
            vec![Says(V), Says("`metric`")],
        ),
        case(
            "variant: rationale note missing",
            vec![Replace(V, "notes/2026-05-08-c-v2-posted-audit.md", "notes/nope.md")],
            vs,
            vec![At(V, "notes/nope.md"), Says("does not exist")],
        ),
        case(
            "variant: rationale note outside notes/",
            vec![Replace(V, "notes/2026-05-08-c-v2-posted-audit.md", "../../etc/passwd")],
            vs,
            vec![At(V, "../../etc/passwd"), Says("inside notes/")],
        ),
        case(
            "variant: rationale note absolute",
            vec![Replace(V, "notes/2026-05-08-c-v2-posted-audit.md", "/etc/passwd")],
            vs,
            vec![At(V, "/etc/passwd")],
        ),
        case(
            "variant: rationale note climbing out",
            vec![Replace(V, "notes/2026-05-08-c-v2-posted-audit.md", "notes/../bench.toml")],
            vs,
            vec![At(V, "notes/../bench.toml")],
        ),
        case(
            "variant: reroll_of unknown",
            vec![Replace(V, "reroll_of = \"c\"", "reroll_of = \"zz\"")],
            vs,
            vec![At(V, "reroll_of = \"zz\"")],
        ),
        case(
            "variant: reroll_of itself",
            vec![Replace(V, "reroll_of = \"c\"", "reroll_of = \"c-v2\"")],
            vs,
            vec![At(V, "reroll_of = \"c-v2\"")],
        ),
        case("variant: not UTF-8", vec![Append(V, b"# caf\xe9\n")], vs, vec![Says("not UTF-8"), Says("byte offset")]),
        case("variant: empty file", vec![Write(V, b"")], vs, vec![Says(V), Says("`name`")]),
        case(
            "variant: a key twice",
            vec![Replace(V, "status = \"proposed\"", "status = \"proposed\"\nstatus = \"failed\"")],
            vs,
            vec![At(V, "status = \"failed\"")],
        ),
        case(
            "variant: drops a parent feature",
            vec![Replace(V, "[\"patch-b\", \"c-prep-atomic\"", "[\"c-prep-atomic\"")],
            vs,
            vec![At(V, "features = "), Says("patch-b"), Says("[dropped]")],
        ),
        case(
            "variant: name with a space",
            vec![Sh("sed 's/^name = .*/name = \"a b\"/' variants/c-v2.toml > 'variants/a b.toml'")],
            vs,
            vec![At("variants/a b.toml", "name = \"a b\""), Says("not allowed")],
        ),
        case(
            "variant: name with a shell character",
            vec![Sh("sed 's/^name = .*/name = \"x;y\"/' variants/c-v2.toml > 'variants/x;y.toml'")],
            vs,
            vec![Says("`x;y`")],
        ),
        case(
            "variant: a directory named like one",
            vec![Sh("mkdir variants/d.toml")],
            vs,
            vec![Says("variants/d.toml"), Says("directory")],
        ),
        case("variant: title not text", vec![Replace(V, "title = \"", "title = 7 #\"")], vs, vec![At(V, "title = 7")]),
        case("variant: no rationale", vec![Replace(V, "[rationale]", "[rationalee]")], vs, vec![At(V, "[rationalee]")]),
        case(
            "variant: dropped reason not text",
            vec![Append(V, b"\n[dropped]\npatch-b = 1\n")],
            vs,
            vec![At(V, "patch-b = 1")],
        ),
        case(
            "variant: bench.toml default_variant unknown",
            vec![Replace(T, "module = ", "default_variant = \"c-v3\"\nmodule = ")],
            &["patches"],
            vec![Says("c-v3"), Says("bench.toml")],
        ),
    ]
}

fn note_cases() -> Vec<Case> {
    let ns = &["notes"][..];
    vec![
        case("note: no front matter", vec![Replace(N, "+++\n", "")], ns, vec![Says(N), Says("+++")]),
        case(
            "note: front matter not closed",
            vec![Replace(N, "unit = \"dispatches\" }\n+++\n", "unit = \"dispatches\" }\n")],
            ns,
            vec![Says(N), Says("closing `+++`")],
        ),
        case("note: TOML syntax", vec![Replace(N, "board = \"ohm\"", "board = ohm")], ns, vec![At(N, "board = ohm")]),
        case("note: month 13", vec![Replace(N, "date = \"2026-05-07\"", "date = \"2026-13-07\"")], ns, vec![
            At(N, "date = \"2026-13-07\""),
            Says("YYYY-MM-DD"),
        ]),
        case("note: 30 February", vec![Replace(N, "date = \"2026-05-07\"", "date = \"2026-02-30\"")], ns, vec![
            At(N, "2026-02-30"),
        ]),
        case("note: date in words", vec![Replace(N, "date = \"2026-05-07\"", "date = \"7 May 2026\"")], ns, vec![
            At(N, "7 May 2026"),
        ]),
        case("note: date not the file name's", vec![Replace(N, "date = \"2026-05-07\"", "date = \"2026-05-09\"")], ns, vec![
            At(N, "2026-05-09"),
            Says("2026-05-07"),
        ]),
        case("note: unknown kind", vec![Replace(N, "kind = \"baseline\"", "kind = \"rumour\"")], ns, vec![
            Says(N),
            Says("baseline, plan, verdict, finding"),
        ]),
        case("note: unknown variant", vec![Replace(N, "variants = [\"b\"]", "variants = [\"bb\"]")], ns, vec![
            Says(N),
            Says("`bb`"),
        ]),
        case("note: no variant", vec![Replace(N, "variants = [\"b\"]", "variants = []")], ns, vec![At(N, "variants = []")]),
        case("note: negative counter", vec![Replace(N, "value = 387532", "value = -387532")], ns, vec![
            At(N, "-387532"),
            Says("from 0"),
        ]),
        case("note: NaN counter", vec![Replace(N, "value = 387532", "value = nan")], ns, vec![At(N, "value = nan")]),
        case("note: 1e300 counter", vec![Replace(N, "value = 387532", "value = 1e300")], ns, vec![At(N, "value = 1e300")]),
        case("note: counter as text", vec![Replace(N, "value = 387532", "value = \"many\"")], ns, vec![At(N, "\"many\"")]),
        case("note: unknown unit", vec![Replace(N, "unit = \"packets\"", "unit = \"parsecs\"")], ns, vec![
            At(N, "parsecs"),
            Says("units:"),
        ]),
        case("note: zero duration", vec![Replace(N, "value = 404.8", "value = 0")], ns, vec![
            At(N, "duration = { value = 0"),
            Says("zero"),
        ]),
        case("note: duration in fortnights", vec![Replace(N, "unit = \"s\" }", "unit = \"fortnights\" }")], ns, vec![
            At(N, "fortnights"),
        ]),
        case("note: offered in furlongs", vec![Replace(N, "unit = \"MB/s\" }", "unit = \"furlongs\" }")], ns, vec![
            At(N, "furlongs"),
        ]),
        case("note: two baselines on one day", vec![Sh("cp notes/2026-05-07-b-baseline-4mb.md notes/2026-05-07-b-again.md")], ns, vec![
            Says("two baselines"),
            Says("notes/2026-05-07-b-again.md"),
        ]),
        case("note: CRLF and a bad date", vec![Replace(N, "date = \"2026-05-07\"", "date = \"2026-05-32\""), Sh("sed -i 's/$/\\r/' notes/2026-05-07-b-baseline-4mb.md")], ns, vec![
            At(N, "2026-05-32"),
        ]),
        case("note: not UTF-8", vec![Append(N, b"caf\xe9\n")], ns, vec![Says(N), Says("not UTF-8"), Says("byte offset")]),
        case("note: no title", vec![Replace(N, "title = \"Patch B baseline at 4 MB/s on ohm\"\n", "")], ns, vec![
            Says(N),
            Says("`title`"),
        ]),
        case("note: empty title", vec![Replace(N, "title = \"Patch B baseline at 4 MB/s on ohm\"", "title = \"\"")], ns, vec![
            At(N, "title = \"\""),
            Says("empty"),
        ]),
        case("note: srcversion not hex", vec![Replace(N, "srcversion = \"1B3B3ED0\"", "srcversion = \"XYZ!\"")], ns, vec![
            At(N, "XYZ!"),
            Says("hex"),
        ]),
        case("note: empty file", vec![Write(N, b"")], ns, vec![Says(N)]),
        case("note: unknown key", vec![Replace(N, "board = \"ohm\"", "bored = \"ohm\"")], ns, vec![
            At(N, "bored"),
            Says("expected one of"),
        ]),
        case("note: a directory named like one", vec![Sh("mkdir notes/x.md")], ns, vec![Says("notes/x.md"), Says("directory")]),
        case(
            "note: plan prediction of a figure that is not a number",
            vec![Sh("sed -i '0,/^metric = .*/s//metric = \"rx_queue_lock_per_s\"/; 0,/^from = .*/s//from = \"lots\"/' notes/2026-05-08-c-v2-phase4-plan.md")],
            ns,
            vec![At(P, "from = \"lots\""), Says("not a figure")],
        ),
        case(
            "note: plan prediction confidence",
            vec![Sh("sed -i '0,/confidence = \"[a-z]*\"/s//confidence = \"certain\"/' notes/2026-05-08-c-v2-phase4-plan.md")],
            ns,
            vec![At(P, "certain"), Says("high, medium, low")],
        ),
        case(
            "pr: a note broken is named when a PR is written",
            vec![Replace(N, "value = 387532", "value = -1")],
            &["pr", "--variant", "c"],
            vec![At(N, "value = -1")],
        ),
    ]
}

fn config_cases() -> Vec<Case> {
    let st = &["target", "status", "--target", "t"][..];
    vec![
        case("bench.toml: TOML syntax", vec![Append(T, b"module = \n")], st, vec![At(T, "module = \n")]),
        case(
            "bench.toml: module climbs out",
            vec![Replace(T, "module = \"bes2600\"", "module = \"../../evil\"")],
            st,
            vec![At(T, "../../evil")],
        ),
        case(
            "bench.toml: module empty",
            vec![Replace(T, "module = \"bes2600\"", "module = \"\"")],
            st,
            vec![At(T, "module = \"\"")],
        ),
        case(
            "bench.toml: module like an option",
            vec![Replace(T, "module = \"bes2600\"", "module = \"-rf\"")],
            st,
            vec![At(T, "-rf")],
        ),
        case(
            "bench.toml: unknown key",
            vec![Replace(T, "module = \"bes2600\"", "module = \"bes2600\"\ncolour = 1")],
            st,
            vec![At(T, "colour = 1")],
        ),
        case("bench.toml: not UTF-8", vec![Append(T, b"# caf\xe9\n")], st, vec![Says(T), Says("not UTF-8")]),
        case(
            "bench.toml: sender without email",
            vec![Replace(T, "from = \"Seed", "from = \"no email\" #")],
            &["patches", "--check"],
            vec![Says("no email"), Says("Name <email>")],
        ),
        with_target(
            "bench.toml: host like an ssh option",
            "transport = \"ssh\"\nhost = \"-V\"\n",
            vec![At(T, "host = \"-V\"")],
        ),
        with_target(
            "bench.toml: user like an ssh option",
            "transport = \"ssh\"\nhost = \"h\"\nuser = \"-oProxyCommand=x\"\n",
            vec![At(T, "-oProxyCommand")],
        ),
        with_target(
            "bench.toml: user with @",
            "transport = \"ssh\"\nhost = \"h\"\nuser = \"a@b\"\n",
            vec![At(T, "a@b")],
        ),
        with_target("bench.toml: host with a space", "transport = \"ssh\"\nhost = \"a b\"\n", vec![At(T, "a b")]),
        with_target("bench.toml: host empty", "transport = \"ssh\"\nhost = \"\"\n", vec![At(T, "host = \"\"")]),
        with_target(
            "bench.toml: unknown transport",
            "transport = \"pigeon\"\nhost = \"h\"\n",
            vec![At(T, "pigeon"), Says("ssh")],
        ),
        with_target("bench.toml: ssh without host", "transport = \"ssh\"\n", vec![Says("host")]),
        with_target(
            "bench.toml: module_dir climbs out",
            "transport = \"local\"\nroot = \"/tmp/x\"\nmodule_dir = \"../../../etc\"\n",
            vec![At(T, "../../../etc")],
        ),
        with_target(
            "bench.toml: kernel climbs out",
            "transport = \"local\"\nroot = \"/tmp/x\"\nkernel = \"../x\"\n",
            vec![At(T, "kernel = \"../x\"")],
        ),
        with_target(
            "bench.toml: port out of range",
            "transport = \"ssh\"\nhost = \"h\"\nport = 70000\n",
            vec![At(T, "70000")],
        ),
        with_target(
            "bench.toml: unknown target key",
            "transport = \"ssh\"\nhost = \"h\"\nhots = \"x\"\n",
            vec![At(T, "hots")],
        ),
    ]
}

fn cli_cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (ramp, says) in [
        ("4:9999999999999999h", "24h"),
        ("4:100000000h", "24h"),
        ("1e308:1s", "100 MB/s"),
        ("4:5000000h", "24h"),
        ("", "empty"),
        ("4", "missing `:`"),
        ("4:5x", "unit"),
        ("0:5s", "positive"),
        ("nan:5s", "positive"),
        ("inf:5s", "positive"),
        ("4:0s", "positive"),
        ("4:5s,,8:5s", "stage 2"),
        ("4:-5s", "-5s"),
        ("4:1e400s", "1e400s"),
        ("4:5s:3", "5s:3"),
        ("4:0.0001s", "4:0.0001s"),
    ] {
        out.push(Case {
            name: "stress --ramp",
            edits: vec![],
            args: vec!["stress", "--variant", "c-v2", "--ramp", ramp],
            must: vec![Says("--ramp"), Says(says)],
        });
    }
    let c = |name, args: &[&'static str], must| case(name, vec![], args, must);
    out.extend([
        c("stress --ramp negative", &["stress", "--variant", "c-v2", "--ramp=-1:5s"], vec![Says("-1")]),
        c("stress --seeds reversed", &["stress", "--variant", "c-v2", "--seeds", "10..1"], vec![Says("10..1")]),
        c("stress --seeds open", &["stress", "--variant", "c-v2", "--seeds", "1.."], vec![Says("1..")]),
        c("stress --seeds huge", &["stress", "--variant", "c-v2", "--seeds", "1..1000000000"], vec![Says("10000")]),
        c("stress --seed negative", &["stress", "--variant", "c-v2", "--seed=-1"], vec![Says("-1")]),
        c("stress --reps 0", &["stress", "--variant", "c-v2", "--reps", "0"], vec![Says("1..=100")]),
        c("stress --jobs 0", &["stress", "--variant", "c-v2", "--seeds", "1..2", "--jobs", "0"], vec![Says("1..=256")]),
        c(
            "stress --faults unknown",
            &["stress", "--variant", "c-v2", "--faults", "rain"],
            vec![Says("rain"), Says("slow-air")],
        ),
        c(
            "stress --variant unknown",
            &["stress", "--variant", "c-v3"],
            vec![Says("c-v3"), Says("did you mean `c-v2`")],
        ),
        c("stress --variant a path", &["stress", "--variant", "../x"], vec![Says("../x")]),
        c("stress --against unknown", &["stress", "--variant", "c-v2", "--against", "bb"], vec![Says("`bb`")]),
        c(
            "bisect --oracle unknown",
            &["bisect", "--good", "b", "--bad", "c", "--oracle", "bogus"],
            vec![Says("bogus"), Says("oracles:")],
        ),
        c(
            "bisect --oracle bad ramp",
            &["bisect", "--good", "b", "--bad", "c", "--oracle", "stress:ramp=bad"],
            vec![Says("bad")],
        ),
        c(
            "bisect --oracle seeds reversed",
            &["bisect", "--good", "b", "--bad", "c", "--oracle", "stress:seeds=9..2"],
            vec![Says("9..2")],
        ),
        c(
            "bisect --oracle unknown fault",
            &["bisect", "--good", "b", "--bad", "c", "--oracle", "stress:faults=rain"],
            vec![Says("rain"), Says("slow-air")],
        ),
        c(
            "bisect --oracle min-mib NaN",
            &["bisect", "--good", "b", "--bad", "c", "--oracle", "stress:min-mib=nan"],
            vec![Says("nan")],
        ),
        c(
            "bisect --oracle unknown option",
            &["bisect", "--good", "b", "--bad", "c", "--oracle", "stress:colour=1"],
            vec![Says("colour")],
        ),
        c(
            "bisect --oracle empty command",
            &["bisect", "--good", "b", "--bad", "c", "--oracle", "cmd:"],
            vec![Says("cmd:")],
        ),
        c("bisect --good unknown", &["bisect", "--good", "bb", "--bad", "c"], vec![Says("`bb`")]),
        c("bisect good is bad", &["bisect", "--good", "c", "--bad", "c"], vec![Says("both `c`")]),
        c("verify a missing package", &["verify", "nope"], vec![Says("nope")]),
        c("identify not hex", &["identify", "zz"], vec![Says("`zz`"), Says("hex")]),
        c("identify empty", &["identify", ""], vec![Says("srcversion")]),
        c(
            "stage on an unknown target",
            &["stage", "--target", "nope", "--variant", "c-v2"],
            vec![Says("unknown target `nope`")],
        ),
        c("rollback on an unknown target", &["rollback", "--target", "nope"], vec![Says("unknown target `nope`")]),
        c("target status like an option", &["target", "status", "--target=-x"], vec![Says("-x")]),
        c("pr --variant unknown", &["pr", "--variant", "nope"], vec![Says("`nope`")]),
        c("pr --stress unknown run", &["pr", "--variant", "c", "--stress", "999"], vec![Says("#999")]),
        c(
            "pr --build unknown build",
            &["pr", "--variant", "c", "--build", "999"],
            vec![Says("#999"), Says("bench build")],
        ),
        c("patches --base unknown", &["patches", "--base", "nope"], vec![Says("`nope`")]),
        c(
            "notes new: unknown kind",
            &["notes", "new", "--kind", "rumour", "--variant", "c", "--title", "x"],
            vec![Says("rumour")],
        ),
        c("sign-module: key missing", &["sign-module", "x.ko", "--key", "none.pem"], vec![Says("x.ko")]),
        c("lab run --cpus 0", &["lab", "run", "--variant", "c", "--cpus", "0"], vec![Says("--cpus")]),
        c("audit --variant unknown", &["audit", "--variant", "nope"], vec![Says("`nope`")]),
        c("build --variant unknown", &["build", "--variant", "nope"], vec![Says("`nope`")]),
    ]);
    out.push(case(
        "stage: a module that is not ELF",
        vec![
            Append(T, b"\n[targets.t]\ntransport = \"local\"\nroot = \"/nonexistent-bench-root\"\n"),
            Write("x.ko", b"hi\n"),
        ],
        &["stage", "--target", "t", "--ko", "x.ko", "--variant", "c-v2", "--dry-run"],
        vec![Says("x.ko"), Says("ELF")],
    ));
    out.push(case(
        "verify: a file that is not a package",
        vec![Write("f.dkms.tar.gz", b"not a tarball\n"), Sh("ssh-keygen -q -t ed25519 -N '' -f k")],
        &["verify", "f.dkms.tar.gz", "--key", "k.pub"],
        vec![Says("f.dkms.tar.gz")],
    ));
    out.push(case(
        "verify: a key file that is not a key",
        vec![Write("k.pub", b"hello\n"), Sh("mkdir -p p")],
        &["verify", "p", "--key", "k.pub"],
        vec![Says("k.pub")],
    ));
    out.push(case(
        "verify: allowed-signers with a bad line",
        vec![Write("signers", b"# comment\nbob ssh-ed25519 AAAA-not-base64\n"), Sh("mkdir -p p")],
        &["verify", "p", "--allowed-signers", "signers"],
        vec![Says("signers:2")],
    ));
    out
}

/// The line (1-based) where `needle` first occurs in `text`.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.find(needle).map(|at| text[..at].matches('\n').count() + 1)
}

fn apply(root: &Path, e: &Edit) {
    match e {
        Replace(f, from, to) => {
            let p = root.join(f);
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(text.contains(from), "{f} has no `{from}`: the corpus case needs updating");
            std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
        }
        Append(f, bytes) => {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new().append(true).create(true).open(root.join(f)).unwrap();
            file.write_all(bytes).unwrap();
        }
        Write(f, bytes) => std::fs::write(root.join(f), bytes).unwrap(),
        Sh(cmd) => {
            let out = std::process::Command::new("sh").arg("-c").arg(cmd).current_dir(root).output().unwrap();
            assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// Runs one case; `Err` says how it failed.
fn run(c: &Case) -> Result<(), String> {
    let ws = common::Ws::new();
    for e in &c.edits {
        apply(&ws.root, e);
    }
    let mut child = common::bench_command(&ws.root, ws.home.path())
        .args(&c.args)
        .env("BENCH_STATE_DIR", ws.root.join(".bench"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A hang guard, not a timing: every case is an input error found before any work.
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("still running after 120 s (a hang)".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let code = out.status.code();
    let mut problems = Vec::new();
    if code != Some(2) {
        problems.push(format!("exit {code:?}, not 2"));
    }
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        problems.push("a panic".into());
    }
    let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !(first.starts_with("Error: ") || first.starts_with("error: ")) {
        problems.push(format!("the first line is not an error: `{first}`"));
    }
    // A workspace file is named relative to the workspace, or as the full path in it.
    let shown = stderr.replace(&format!("{}/", ws.root.display()), "");
    for m in &c.must {
        match m {
            Says(s) if !shown.contains(s) => problems.push(format!("does not say `{s}`")),
            At(f, needle) => {
                let text = String::from_utf8_lossy(&std::fs::read(ws.root.join(f)).unwrap()).to_string();
                match line_of(&text, needle) {
                    Some(line) if !shown.contains(&format!("{f}:{line}")) => {
                        problems.push(format!("does not point at `{f}:{line}`"))
                    }
                    None => problems.push(format!("the case's needle `{needle}` is not in {f}")),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n--- stderr:\n{stderr}", problems.join("; ")))
    }
}

#[test]
fn every_malformed_input_is_a_clear_error() {
    let cases: Vec<Case> =
        variant_cases().into_iter().chain(note_cases()).chain(config_cases()).chain(cli_cases()).collect();
    assert!(cases.len() >= 80, "the corpus has {} cases", cases.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(c) = cases.get(i) else { break };
                if let Err(why) = run(c) {
                    failures.lock().unwrap().push(format!("[{}] {} {:?}: {why}", i, c.name, c.args));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} of {} cases:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}
