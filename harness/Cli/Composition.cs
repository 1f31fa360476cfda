using EptFuzz.Contract;
using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Running;
using EptFuzz.Targets.External;

namespace EptFuzz.Cli;

/// <summary>The one place that names concrete targets.</summary>
internal static class Composition
{
    public const string DefaultTargets = "model,impl";

    public static IReadOnlyList<string> TargetNames { get; } = ["model", "impl", "bochs", "kvm", "exec:PATH"];

    /// <summary>
    /// The corpus a command uses when none is named: ./corpus in a checkout, else the corpus that
    /// travels with the installed tool (next to eptfuzz.dll), so 'eptfuzz gate' works anywhere.
    /// </summary>
    public static string DefaultCorpus =>
        Directory.Exists("corpus") || !Directory.Exists(Path.Combine(AppContext.BaseDirectory, "corpus"))
            ? "corpus"
            : Path.Combine(AppContext.BaseDirectory, "corpus");

    /// <summary>The prefix of an external target: <c>exec:./build/my-ept</c> runs that executable over the target protocol.</summary>
    public const string ExecPrefix = "exec:";

    // One ExternalTarget per executable for the whole run: its processes are per worker thread.
    private static readonly Dictionary<string, ExternalTarget> Started = [];

    /// <summary>The per-command time limit of external targets (<c>--target-timeout</c>).</summary>
    public static TimeSpan ExternalTimeout { get; set; } = ExternalTargetOptions.DefaultTimeout;

    /// <summary>Whether external targets with a journal get a case's operations ahead (not <c>--target-one-at-a-time</c>).</summary>
    public static bool ExternalLookAhead { get; set; } = true;

    /// <summary>The external target for <paramref name="path"/>, started and asked HELLO once (an infrastructure failure when it cannot run).</summary>
    public static ExternalTarget External(string path)
    {
        lock (Started)
        {
            string full = Path.GetFullPath(path);
            if (!Started.TryGetValue(full, out var target))
            {
                if (!File.Exists(full))
                {
                    throw new TargetFailureException(ExecPrefix + path, $"no such file: {full}");
                }

                target = new ExternalTarget(new ExternalTargetOptions { Path = full, Timeout = ExternalTimeout, LookAhead = ExternalLookAhead });
                target.Declare();
                Started[full] = target;
            }

            return target;
        }
    }

    /// <summary>How many rule ids the reference model implements ("rules hit / rules modelled").</summary>
    public static int ModelledRuleCount => EptFuzz.Reference.Rules.RuleCatalog.Modelled.Count;

    public static IEptHypervisor CreateHypervisor() => new EptFuzz.Impl.Hypervisor.EptHypervisor();

    /// <summary>
    /// Targets by name, in the order given (the first is the baseline); errors name the bad entry.
    /// An <c>exec:PATH</c> entry makes that executable the hypervisor that builds the tables (in place
    /// of the in-tree implementation) and, where it declares a lookup, a translator named NAME.walk.
    /// Throws <see cref="TargetFailureException"/> when an external target cannot be started.
    /// </summary>
    public static (TargetSelection Targets, string? Error) CreateTargets(string list)
    {
        var targets = new List<ITarget>();
        ExternalTarget? external = null;
        foreach (var raw in list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (raw.StartsWith(ExecPrefix, StringComparison.Ordinal))
            {
                if (external is not null)
                {
                    return (TargetSelection.Empty, $"--targets: '{raw}': one external target per run (it is the hypervisor that builds the tables)");
                }

                if (raw.Length == ExecPrefix.Length)
                {
                    return (TargetSelection.Empty, "--targets: 'exec:' needs the path of the target executable, e.g. exec:./build/my-ept");
                }

                external = External(raw[ExecPrefix.Length..]);
                if (external.Walker is { } walker)
                {
                    targets.Add(walker);
                }

                continue;
            }

            ITarget? target = raw switch
            {
                "model" => new EptFuzz.Targets.Model.ModelTarget(),
                "impl" => new EptFuzz.Impl.Target.ImplTarget(),
                "bochs" => new EptFuzz.Targets.Vmx.BochsTarget(),
                "kvm" => new EptFuzz.Targets.Vmx.KvmTarget(),
                _ => null,
            };
            if (target is null)
            {
                return (TargetSelection.Empty, $"--targets: unknown target '{raw}'; known targets: {string.Join(", ", TargetNames)}");
            }

            if (targets.Any(t => t.Name == target.Name))
            {
                return (TargetSelection.Empty, $"--targets: '{raw}' is named twice");
            }

            targets.Add(target);
        }

        if (targets.Count == 0)
        {
            return (TargetSelection.Empty, "--targets: name at least one translator (model, impl, bochs, kvm) besides an exec: target");
        }

        return external is null
            ? (new TargetSelection(targets, CreateHypervisor, HypervisorFeatures.All, null), null)
            : (new TargetSelection(targets, external.CreateHypervisor, external.Features, external), null);
    }

    /// <summary>
    /// Opens one session on each target before any case runs: a target that cannot run here (an
    /// emulator missing, no nested VMX, a capability boot that fails twice) is said once, as an
    /// infrastructure failure, instead of failing every case. Null when all can run.
    /// </summary>
    public static string? Preflight(IEnumerable<ITarget> targets)
    {
        foreach (var target in targets)
        {
            try
            {
                using var session = target.Open(CpuCapabilities.Default);
                _ = target.Traits;
            }
            catch (TargetFailureException e)
            {
                return e.Message;
            }
        }

        return null;
    }

    /// <summary>Loads known divergences; a missing default file is fine, a malformed one is bad input.</summary>
    public static (KnownDivergences Known, IReadOnlyList<string> Errors) LoadKnown(string? path, string corpusDirectory)
    {
        var file = path ?? Path.Combine(corpusDirectory, "known-divergences.txt");
        if (!File.Exists(file))
        {
            return path is null ? (KnownDivergences.None, []) : (KnownDivergences.None, [$"{file}: no such file"]);
        }

        return KnownDivergences.Parse(File.ReadAllText(file), file);
    }

    public static RunOptions Options(TargetSelection targets, KnownDivergences known, TextWriter? trace, string targetList) => new()
    {
        Hypervisor = targets.Hypervisor,
        Features = targets.Features,
        Targets = targets,
        Known = known,
        Trace = trace,
        ReplayCommand = file => $"./eptfuzz replay {file} --targets {targetList} --trace",
    };

    /// <summary>
    /// The implementation's code coverage for <c>--coverage code</c>: the SharpFuzz-instrumented
    /// implementation, one copy per worker. Null when this build carries no instrumented copy.
    /// </summary>
    public static Harness.Fuzzing.ICodeCoverageSource? CodeCoverage(string targetList, KnownDivergences known, out string? why) =>
        InstrumentedImpl.TryCreate(targetList, known, out why);
}

/// <summary>The translators of a run (baseline first) and the hypervisor that builds the tables for them.</summary>
internal sealed class TargetSelection(List<ITarget> translators, Func<IEptHypervisor> hypervisor, HypervisorFeatures features, ExternalTarget? external) : IReadOnlyList<ITarget>
{
    public static TargetSelection Empty { get; } = new([], Composition.CreateHypervisor, HypervisorFeatures.All, null);

    public Func<IEptHypervisor> Hypervisor { get; } = hypervisor;

    public HypervisorFeatures Features { get; } = features;

    /// <summary>The external target when one builds the tables, else null.</summary>
    public ExternalTarget? External { get; } = external;

    public int Count => translators.Count;

    public ITarget this[int index] => translators[index];

    public IEnumerator<ITarget> GetEnumerator() => translators.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
