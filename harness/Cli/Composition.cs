using EptFuzz.Contract;
using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Running;

namespace EptFuzz.Cli;

/// <summary>The one place that names concrete targets.</summary>
internal static class Composition
{
    public const string DefaultTargets = "model,impl";

    public static IReadOnlyList<string> TargetNames { get; } = ["model", "impl", "bochs", "kvm"];

    /// <summary>How many rule ids the reference model implements ("rules hit / rules modelled").</summary>
    public static int ModelledRuleCount => EptFuzz.Reference.Rules.RuleCatalog.Modelled.Count;

    public static IEptHypervisor CreateHypervisor() => new EptFuzz.Impl.Hypervisor.EptHypervisor();

    /// <summary>Targets by name, in the order given (the first is the baseline); errors name the bad entry.</summary>
    public static (List<ITarget> Targets, string? Error) CreateTargets(string list)
    {
        var targets = new List<ITarget>();
        foreach (var raw in list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
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
                return ([], $"--targets: unknown target '{raw}'; known targets: {string.Join(", ", TargetNames)}");
            }

            if (targets.Any(t => t.Name == target.Name))
            {
                return ([], $"--targets: '{raw}' is named twice");
            }

            targets.Add(target);
        }

        return targets.Count == 0 ? ([], "--targets: name at least one target") : (targets, null);
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

    public static RunOptions Options(List<ITarget> targets, KnownDivergences known, TextWriter? trace, string targetList) => new()
    {
        Hypervisor = CreateHypervisor,
        Targets = targets,
        Known = known,
        Trace = trace,
        ReplayCommand = file => $"./eptfuzz replay {file} --targets {targetList} --trace",
    };

    /// <summary>
    /// The implementation's code coverage for <c>--coverage code</c>: the SharpFuzz-instrumented
    /// implementation, one copy per worker. Null when this build carries no instrumented copy.
    /// </summary>
    public static Harness.Fuzzing.ICodeCoverageSource? CodeCoverage(string targetList, KnownDivergences known) =>
        InstrumentedImpl.TryCreate(targetList, known);
}
