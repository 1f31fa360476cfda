namespace EptFuzz.Harness.Cases;

/// <summary>
/// Where something was written: 1-based line and column (columns count UTF-16 code units, which
/// is characters for the ASCII the format uses). <see cref="None"/> (0:0) marks a step built in code.
/// </summary>
public readonly record struct SourcePosition(int Line, int Column)
{
    public static SourcePosition None => default;

    public bool IsKnown => Line > 0;

    public override string ToString() => $"{Line}:{Column}";
}
