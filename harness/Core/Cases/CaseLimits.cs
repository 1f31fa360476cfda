namespace EptFuzz.Harness.Cases;

/// <summary>
/// Bounds that keep the parser and the runner's memory small on hostile input. A case that
/// exceeds one is refused with a located error instead of exhausting memory or time.
/// </summary>
public static class CaseLimits
{
    /// <summary>Largest file accepted: 1 MiB (characters for text input, bytes for UTF-8 input).</summary>
    public const int MaxFileLength = 1 << 20;

    /// <summary>Longest line, comments included.</summary>
    public const int MaxLineLength = 4096;

    /// <summary>Most steps in one case.</summary>
    public const int MaxSteps = 100_000;

    /// <summary>Errors reported per file; the file is rejected either way.</summary>
    public const int MaxErrors = 100;

    /// <summary>
    /// Most leaf entries one <c>identity-map</c> may need, given the memory ranges declared before
    /// it and the page sizes the <c>cpu</c> allows (2^20 leaves are 8 MiB of 4K tables).
    /// </summary>
    public const ulong MaxIdentityMapLeaves = 1UL << 20;

    /// <summary>
    /// Most (identity-map step, memory range declared before it) pairs in one case: every
    /// identity-map walks every range, in the parser's estimate and in every target.
    /// </summary>
    public const int MaxIdentityMapRangeVisits = 1 << 20;

    /// <summary>Characters of an offending token quoted in a message.</summary>
    public const int MaxQuotedLength = 40;
}
