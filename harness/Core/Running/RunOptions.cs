using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Comparing;

namespace EptFuzz.Harness.Running;

/// <summary>Sees every step's baseline observation; the fuzzer's coverage map listens here.</summary>
public interface IRunObserver
{
    void OnOperation(int stepIndex, Step step, ApiResult result);

    void OnProbe(int stepIndex, Step step, Observation baseline);
}

/// <summary>How to run cases: which hypervisor builds the tables and which translators answer.</summary>
public sealed record RunOptions
{
    /// <summary>Creates a fresh hypervisor (the implementation that builds the tables) per case.</summary>
    public required Func<IEptHypervisor> Hypervisor { get; init; }

    /// <summary>What that hypervisor implements: a case that needs more is <see cref="CaseStatus.Unsupported"/>.</summary>
    public HypervisorFeatures Features { get; init; } = HypervisorFeatures.All;

    /// <summary>The translators, baseline first: every other one is compared against it.</summary>
    public required IReadOnlyList<ITarget> Targets { get; init; }

    public KnownDivergences Known { get; init; } = KnownDivergences.None;

    /// <summary>Check operation results and accesses against the intent model.</summary>
    public bool CheckIntent { get; init; } = true;

    /// <summary>Where <c>--trace</c> writes every step; null for none.</summary>
    public TextWriter? Trace { get; init; }

    public IRunObserver? Observer { get; init; }

    /// <summary>Checked after every operation step; a violation is a finding. Default: table-page accounting.</summary>
    public IReadOnlyList<IOperationInvariant> Invariants { get; init; } = [Accounting.TableAccounting.Instance];

    /// <summary>The one-line command that replays a file, for reports.</summary>
    public Func<string, string> ReplayCommand { get; init; } = file => $"./eptfuzz replay {file} --trace";
}
