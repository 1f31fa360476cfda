namespace EptFuzz.Targets.External;

/// <summary>How to run an external target: its executable, the time it may take per command, its arena.</summary>
public sealed record ExternalTargetOptions
{
    /// <summary>Default time limit for one command: a target that takes longer hangs (a finding).</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(2);

    /// <summary>Default arena: 65,536 pages (256 MiB, sparse), as many table pages as the in-tree pool allows.</summary>
    public const int DefaultArenaPages = 1 << 16;

    public required string Path { get; init; }

    public TimeSpan Timeout { get; init; } = DefaultTimeout;

    public int ArenaPages { get; init; } = DefaultArenaPages;

    /// <summary>
    /// Send a case's operations ahead, in one write, where the target's SDK keeps a journal
    /// (PROTOCOL.md "Journal mode"); false: one command and its answer at a time, as for an SDK
    /// without one. The answers, and so every verdict, are the same either way.
    /// </summary>
    public bool LookAhead { get; init; } = true;
}
