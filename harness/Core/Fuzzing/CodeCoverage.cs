using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// The implementation's code coverage, for <see cref="CoverageKinds.Code"/>: a SharpFuzz-instrumented
/// build whose trace map (one hit counter per edge) a worker clears before each execution and
/// reads after it. The map is a static of the instrumentation's runtime, so each worker gets its
/// own copy of the implementation and of that runtime (see the CLI's composition): workers never
/// write into each other's map.
/// </summary>
public interface ICodeCoverageSource
{
    /// <summary>Run options whose hypervisor and implementation target trace into <paramref name="worker"/>'s own map, and that map.</summary>
    (RunOptions Options, ICodeTracer Tracer) ForWorker(int worker);
}

/// <summary>One worker's trace map.</summary>
public interface ICodeTracer
{
    /// <summary>Clears the map (and the previous-location register) before an execution.</summary>
    void Reset();

    /// <summary>The map after an execution: one saturating hit counter per edge.</summary>
    ReadOnlySpan<byte> Map { get; }
}
