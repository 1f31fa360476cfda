namespace EptFuzz.Harness.Fuzzing;

/// <summary>The feedback a campaign is guided by (<c>--coverage</c>).</summary>
[Flags]
public enum CoverageKinds
{
    None = 0,
    /// <summary>The reference model's rules, rule pairs, entry transitions and outcome shapes.</summary>
    Rules = 1,
    /// <summary><see cref="ValueClasses"/>: the value classes of step fields and of what accesses met.</summary>
    Classes = 2,
    /// <summary>The implementation's edge coverage (needs the SharpFuzz-instrumented build).</summary>
    Code = 4,
    /// <summary>The campaign's default (see README, Guidance: chosen by executions-to-detect).</summary>
    Default = Rules | Classes,
    All = Rules | Classes | Code,
}

/// <summary>Parsing and printing of <c>--coverage</c> values.</summary>
public static class CoverageKindsText
{
    /// <summary>The accepted spellings: a comma list of <c>rules</c>, <c>classes</c>, <c>code</c>, or <c>both</c> (all three).</summary>
    public const string Usage = "rules|classes|code|both, or a comma list of rules, classes and code";

    public static bool TryParse(string text, out CoverageKinds kinds, out string error)
    {
        kinds = CoverageKinds.None;
        error = string.Empty;
        foreach (string part in (text ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            switch (part.ToLowerInvariant())
            {
                case "rules":
                    kinds |= CoverageKinds.Rules;
                    break;
                case "classes":
                    kinds |= CoverageKinds.Classes;
                    break;
                case "code":
                    kinds |= CoverageKinds.Code;
                    break;
                case "both":
                case "all":
                    kinds |= CoverageKinds.All;
                    break;
                default:
                    error = $"--coverage: unknown feedback '{part}' (expected {Usage})";
                    return false;
            }
        }

        if (kinds == CoverageKinds.None)
        {
            error = $"--coverage: empty (expected {Usage})";
            return false;
        }

        return true;
    }

    public static string Format(CoverageKinds kinds)
    {
        var parts = new List<string>(3);
        if ((kinds & CoverageKinds.Rules) != 0)
        {
            parts.Add("rules");
        }

        if ((kinds & CoverageKinds.Classes) != 0)
        {
            parts.Add("classes");
        }

        if ((kinds & CoverageKinds.Code) != 0)
        {
            parts.Add("code");
        }

        return string.Join(',', parts);
    }
}
