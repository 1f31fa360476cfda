using System.Collections.Immutable;

namespace EptFuzz.Harness.Cases;

/// <summary>
/// A parsed or built case: header comments (the comment lines before the first step, e.g. the
/// reducer's <c># found by: …</c>), the version, and the steps in order.
/// </summary>
/// <remarks>
/// Equality is structural: version, header comments and steps (each step ignoring its source
/// position). <see cref="SourceName"/> says where the case came from, not what it is, so it is
/// not compared either.
/// </remarks>
public sealed record EptCase
{
    public const int CurrentVersion = 1;

    public EptCase(IEnumerable<Step> steps, IEnumerable<string>? headerComments = null, string sourceName = "")
    {
        Steps = [.. steps];
        HeaderComments = headerComments is null ? [] : [.. headerComments];
        SourceName = sourceName;
    }

    /// <summary>The file name the case was parsed from (or any label for a built case).</summary>
    public string SourceName { get; init; }

    public int Version { get; init; } = CurrentVersion;

    /// <summary>Comment texts without the leading <c>#</c> and one following space; printed as <c># text</c>.</summary>
    public ImmutableArray<string> HeaderComments { get; init; }

    public ImmutableArray<Step> Steps { get; init; }

    public bool Equals(EptCase? other) =>
        other is not null
        && Version == other.Version
        && Same(HeaderComments, other.HeaderComments)
        && Same(Steps, other.Steps);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Version);
        foreach (string comment in HeaderComments.IsDefault ? [] : HeaderComments)
        {
            hash.Add(comment);
        }

        foreach (Step step in Steps.IsDefault ? [] : Steps)
        {
            hash.Add(step);
        }

        return hash.ToHashCode();
    }

    private static bool Same<T>(ImmutableArray<T> a, ImmutableArray<T> b)
    {
        ImmutableArray<T> x = a.IsDefault ? [] : a;
        ImmutableArray<T> y = b.IsDefault ? [] : b;
        return x.AsSpan().SequenceEqual(y.AsSpan());
    }
}
