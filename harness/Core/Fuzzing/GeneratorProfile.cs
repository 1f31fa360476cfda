namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// Which processors generated cases run on. Part of what regenerates a case: (seed, generator
/// version, cpu profile) give the same bytes on any machine.
/// </summary>
public enum CpuProfile
{
    /// <summary>Each case draws its own capabilities (MAXPHYADDR, 5-level walks, A/D, MBEC, …).</summary>
    Random,
    /// <summary>The case format's defaults: <c>cpu</c> with no keys.</summary>
    Default,
    /// <summary>Everything on: 5-level walks, A/D, MBEC, advanced exit information, 1G pages.</summary>
    Full,
    /// <summary>The least a processor with EPT may have: no execute-only, no 1G pages, no A/D, 4-level walks.</summary>
    Minimal,
}

/// <summary>How the generator shapes cases.</summary>
public sealed record GeneratorProfile
{
    public const int DefaultSteps = 64;

    /// <summary>Steps per generated case (the cpu/eptp/set-up steps included); at least 4.</summary>
    public int Steps { get; init; } = DefaultSteps;

    public CpuProfile Cpu { get; init; } = CpuProfile.Random;

    public const int DefaultProbeWeight = 38;

    /// <summary>
    /// How often a random step is a probe, against operations' 42 (and raw edits' 7, …). The
    /// default mix finds the bug catalog's bugs soonest; a probe-heavy mix (<c>fuzz --probe-weight
    /// 400</c>, the access-throughput benchmark) checks each built state with many more accesses.
    /// Like <see cref="Steps"/>, it changes the case a seed generates: a campaign records it in
    /// stats.json and refuses to resume with another, and a finding's "found by" line carries it
    /// in the command line.
    /// </summary>
    public int ProbeWeight { get; init; } = DefaultProbeWeight;

    /// <summary>
    /// What the hypervisor under test implements (an external target's declaration): steps it lacks
    /// are never generated (<see cref="Running.CaseFeatures.Restrict"/>). All for the in-tree one.
    /// </summary>
    public Contract.HypervisorFeatures Features { get; init; } = Contract.HypervisorFeatures.All;

    public static GeneratorProfile Default { get; } = new();

    /// <summary>Parses a <c>--cpu-profile</c> value; null and a message when it is not one.</summary>
    public static CpuProfile? ParseCpuProfile(string text, out string error)
    {
        error = string.Empty;
        foreach (CpuProfile p in Enum.GetValues<CpuProfile>())
        {
            if (string.Equals(p.ToString(), text, StringComparison.OrdinalIgnoreCase))
            {
                return p;
            }
        }

        error = $"unknown cpu profile '{text}': expected one of random, default, full, minimal";
        return null;
    }

    /// <summary>A message naming the <c>fuzz</c> flag that sets the bad value, else null.</summary>
    public string? Validate() =>
        Steps is < 4 or > 10_000 ? $"--steps (steps per case) must be 4 to 10000, found {Steps}"
        : ProbeWeight is < 0 or > 10_000 ? $"--probe-weight (probes against operations' 42) must be 0 to 10000, found {ProbeWeight}"
        : null;
}
