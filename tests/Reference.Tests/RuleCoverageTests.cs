using System.Text.RegularExpressions;
using EptFuzz.Reference;
using EptFuzz.Reference.Rules;

namespace EptFuzz.Reference.Tests;

/// <summary>The catalog is complete and ordered, every modelled rule fires somewhere, and the README agrees.</summary>
public sealed partial class RuleCoverageTests
{
    [Fact]
    public void EveryModelledRule_FiresInSomeRow()
    {
        RuleSet union = RuleSet.Empty;
        foreach (ModelCase row in Cases.All.Values)
        {
            union = union.Union(row.Evaluate().Fired);
        }

        foreach (VmEntryCase row in VmEntryCase.Rows())
        {
            union = union.Union(row.Evaluate().Fired);
        }

        string[] missing = RuleCatalog.Modelled.Except(union).Members().Select(r => RuleCatalog.Get(r).Name).ToArray();
        Assert.True(missing.Length == 0, "modelled rules no row makes fire: " + string.Join(", ", missing));
    }

    [Fact]
    public void NoRow_FiresAnUnmodelledRule()
    {
        RuleSet union = RuleSet.Empty;
        foreach (ModelCase row in Cases.All.Values)
        {
            union = union.Union(row.Evaluate().Fired);
        }

        RuleSet notModelled = union.Except(RuleCatalog.Modelled);
        Assert.True(notModelled.IsEmpty, "rules fired but catalogued as not modelled: " + string.Join(", ", notModelled.Members()));
    }

    [Fact]
    public void Catalog_HasEveryIdInEnumOrder()
    {
        RuleId[] ids = Enum.GetValues<RuleId>();
        Assert.Equal(96, ids.Length);
        Assert.Equal(ids.Length, RuleCatalog.All.Count);
        for (int i = 0; i < ids.Length; i++)
        {
            Assert.Equal(i, (int)ids[i]);
            Assert.Equal(ids[i], RuleCatalog.All[i].Id);
            Assert.Equal(RuleCatalog.All[i].Name, RuleCatalog.Names[i]);
        }

        Assert.Equal(ids.Length, RuleCatalog.Names.Distinct().Count());
    }

    [Fact]
    public void Readme_ListsEveryRuleWithItsStatus()
    {
        string readme = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "reference", "README.md"));
        var listed = new Dictionary<string, (bool Modelled, string Section, string Note)>();
        foreach (Match match in ReadmeRow().Matches(readme))
        {
            listed[match.Groups["id"].Value] = (match.Groups["status"].Value == "modelled", match.Groups["section"].Value, match.Groups["note"].Value);
        }

        foreach (RuleInfo rule in RuleCatalog.All)
        {
            Assert.True(listed.TryGetValue(rule.Name, out var row), $"README does not list {rule.Name}");
            Assert.True(row.Modelled == rule.Modelled, $"README says {rule.Name} is {(row.Modelled ? "" : "not ")}modelled; the catalog disagrees");
            Assert.Equal(rule.Section, row.Section);
            if (!rule.Modelled)
            {
                Assert.Equal(rule.NotModelledReason, row.Note);
            }
        }

        Assert.Equal(RuleCatalog.All.Count, listed.Count);
    }

    [Fact]
    public void RuleSet_WithAndContains_UseTheEnumIndex()
    {
        RuleSet set = RuleSet.Empty.With(RuleId.EptVmfunc1).With(RuleId.EptScope1).With(RuleId.EptAd1);
        Assert.Equal(3, set.Count);
        Assert.True(set.Contains(RuleId.EptVmfunc1));
        Assert.False(set.Contains(RuleId.EptVe1));
        Assert.Equal([RuleId.EptScope1, RuleId.EptAd1, RuleId.EptVmfunc1], set.Members());
        Assert.Equal(new RuleSet(1UL << (int)RuleId.EptMisconfig8, 0, 0, 0), set.With(RuleId.EptMisconfig8).Except(set));
        Assert.Equal(new RuleSet(0, 1UL << ((int)RuleId.EptVmfunc1 - 64), 0, 0), RuleSet.Empty.With(RuleId.EptVmfunc1));
    }

    // A README table row: | `EPT-VE-1` | not modelled | section | reason |
    [GeneratedRegex(@"^\|\s*`(?<id>[A-Z0-9a-z-]+)`\s*\|\s*(?<status>modelled|not modelled)\s*\|\s*(?<section>[^|]*?)\s*\|\s*(?<note>[^|]*?)\s*\|\s*$", RegexOptions.Multiline)]
    private static partial Regex ReadmeRow();
}
