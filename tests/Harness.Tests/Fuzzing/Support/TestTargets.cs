using EptFuzz.Harness.Running;
using EptFuzz.Impl.Hypervisor;

namespace EptFuzz.Harness.Tests.Fuzzing.Support;

/// <summary>Run options for the fuzzer's tests: the C# hypervisor builds the tables, two walking translators answer.</summary>
internal static class TestTargets
{
    /// <summary>Two identical translators (no divergence possible) or one with the planted bug.</summary>
    public static RunOptions Options(bool planted = false) => new()
    {
        Hypervisor = () => new EptHypervisor(),
        Targets = [new WalkingTarget("model"), new WalkingTarget("broken", planted)],
        // The walking translator is not the SDM model; intent checks would judge it, not the fuzzer.
        CheckIntent = false,
    };
}
