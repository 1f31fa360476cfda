using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;

namespace EptFuzz.Cli;

/// <summary>The SharpFuzz-instrumented implementation, loaded once per worker (see <see cref="ICodeCoverageSource"/>).</summary>
internal static class InstrumentedImpl
{
    /// <summary>Null: this build ships no instrumented implementation yet.</summary>
    public static ICodeCoverageSource? TryCreate(string targetList, KnownDivergences known)
    {
        _ = targetList;
        _ = known;
        return null;
    }
}
