namespace EptFuzz.Harness.Cases;

/// <summary>
/// The keys each verb accepts, in canonical (printing) order. A key outside its verb's list is
/// an error, as is an unknown verb (case-format.md: "Unknown verbs or keys are errors").
/// </summary>
internal static class VerbTable
{
    private static readonly Dictionary<string, string[]> KeysByVerb = new(StringComparer.Ordinal)
    {
        ["cpu"] = ["maxphyaddr", "exec-only", "page2m", "page1g", "ad", "mbec", "walk5", "adv-exit-info", "eptp-uc", "eptp-wb"],
        ["eptp"] = ["raw", "mt", "walk", "ad"],
        ["controls"] = ["mbec"],
        ["guest"] = ["paging", "cr3", "tables", "wp", "nxe", "smep", "pat"],
        ["map"] = ["gpa", "hpa", "size", "perm", "mt", "ipat"],
        ["unmap"] = ["gpa", "size"],
        ["protect"] = ["gpa", "size", "perm"],
        ["retype"] = ["gpa", "size", "mt", "ipat"],
        ["split"] = ["gpa"],
        ["merge"] = ["gpa", "size"],
        ["memory"] = ["start", "end", "mt"],
        ["identity-map"] = ["offset", "offset-from"],
        ["invept"] = ["type"],
        ["edit"] = ["gpa", "level", "set", "clear", "leaf-hpa"],
        ["poke"] = ["hpa", "value"],
        ["gmap"] = ["gva", "gpa", "size", "perm"],
        ["gedit"] = ["gva", "level", "set", "clear"],
        ["read"] = ["gpa", "gva", "cpl"],
        ["write"] = ["gpa", "gva", "cpl"],
        ["fetch"] = ["gpa", "gva", "cpl"],
        ["entry"] = ["gpa", "level"],
        ["vmentry"] = [],
    };

    /// <summary>The kind of expectation a verb takes (known from the verb alone).</summary>
    public static StepCategory CategoryOf(string verb) => verb switch
    {
        "read" or "write" or "fetch" => StepCategory.Access,
        "entry" => StepCategory.Entry,
        "vmentry" => StepCategory.VmEntry,
        _ => StepCategory.Operation,
    };

    public static bool TryGetVerb(ReadOnlySpan<char> verb, out string name, out string[] keys)
    {
        var lookup = KeysByVerb.GetAlternateLookup<ReadOnlySpan<char>>();
        return lookup.TryGetValue(verb, out name!, out keys!);
    }
}
