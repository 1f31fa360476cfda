using System.Reflection;
using System.Xml.Linq;

namespace EptFuzz.Architecture.Tests;

/// <summary>
/// STYLE.md: the reference depends on nothing; the contract depends on nothing; the C#
/// implementation depends on the contract only and never on the reference; the harness depends on
/// the contract only; the CLI composes. Checked twice: on the project files (what may be
/// referenced) and on the built assemblies (what is referenced).
/// </summary>
public sealed class DependencyRules
{
    public static TheoryData<string, string, string[]> Rules => new()
    {
        { "reference/EptFuzz.Reference.csproj", "EptFuzz.Reference", [] },
        { "targets/Contract/EptFuzz.Contract.csproj", "EptFuzz.Contract", [] },
        { "targets/Impl/EptFuzz.Impl.csproj", "EptFuzz.Impl", ["EptFuzz.Contract"] },
        { "harness/Core/EptFuzz.Harness.csproj", "EptFuzz.Harness", ["EptFuzz.Contract"] },
        { "targets/Model/EptFuzz.Targets.Model.csproj", "EptFuzz.Targets.Model", ["EptFuzz.Contract", "EptFuzz.Reference"] },
        { "targets/Vmx/EptFuzz.Targets.Vmx.csproj", "EptFuzz.Targets.Vmx", ["EptFuzz.Contract", "Iced"] },
        { "targets/External/EptFuzz.Targets.External.csproj", "EptFuzz.Targets.External", ["EptFuzz.Contract"] },
    };

    [Theory]
    [MemberData(nameof(Rules))]
    public void ProjectFile_ReferencesOnlyWhatItMay(string projectPath, string assembly, string[] allowed)
    {
        var project = XDocument.Load(Path.Combine(RepositoryRoot.Path, projectPath));
        var references = project.Descendants()
            .Where(e => e.Name.LocalName is "ProjectReference" or "PackageReference" or "Reference")
            .Select(e => Path.GetFileNameWithoutExtension((string?)e.Attribute("Include") ?? string.Empty))
            .ToList();

        var forbidden = references.Where(r => !allowed.Contains(r)).ToList();
        Assert.True(forbidden.Count == 0, $"{assembly} may reference only [{string.Join(", ", allowed)}] but its project references [{string.Join(", ", forbidden)}]");
    }

    [Theory]
    [MemberData(nameof(Rules))]
    public void BuiltAssembly_ReferencesOnlyWhatItMay(string projectPath, string assembly, string[] allowed)
    {
        _ = projectPath;
        var loaded = Assembly.Load(assembly);
        var foreign = loaded.GetReferencedAssemblies()
            .Select(a => a.Name ?? string.Empty)
            .Where(name => !IsPlatform(name) && !allowed.Contains(name))
            .ToList();

        Assert.True(foreign.Count == 0, $"{assembly} references [{string.Join(", ", foreign)}]; allowed besides the platform: [{string.Join(", ", allowed)}]");
    }

    /// <summary>
    /// The libFuzzer entry point composes like the CLI, but only what it runs: the harness, the
    /// model target and the implementation (instrumented), and SharpFuzz. Checked on the project
    /// file only: its built copy of the implementation is the instrumented one, not loaded here.
    /// </summary>
    [Fact]
    public void LibFuzzerEntryPoint_ReferencesOnlyWhatItRuns()
    {
        string[] allowed = ["EptFuzz.Harness", "EptFuzz.Targets.Model", "EptFuzz.Impl", "SharpFuzz"];
        var project = XDocument.Load(Path.Combine(RepositoryRoot.Path, "harness/LibFuzzer/EptFuzz.LibFuzzer.csproj"));
        var references = project.Descendants()
            .Where(e => e.Name.LocalName is "ProjectReference" or "PackageReference" or "Reference")
            .Select(e => Path.GetFileNameWithoutExtension((string?)e.Attribute("Include") ?? string.Empty))
            .ToList();
        Assert.NotEmpty(references);
        var forbidden = references.Where(r => !allowed.Contains(r)).ToList();
        Assert.True(forbidden.Count == 0, $"the libFuzzer entry point may reference only [{string.Join(", ", allowed)}] but references [{string.Join(", ", forbidden)}]");
    }

    /// <summary>
    /// tests/TestSupport (the repository root, the known-divergences loader, the test fakes) is a
    /// library for tests: it speaks the contract and the harness only, and nothing shipped references it.
    /// </summary>
    [Fact]
    public void TestSupport_IsForTestsOnly_AndReferencesOnlyTheContractAndTheHarness()
    {
        var references = ReferencesOf("tests/TestSupport/EptFuzz.TestSupport.csproj");
        Assert.NotEmpty(references);
        Assert.All(references, r => Assert.Contains(r, (string[])["EptFuzz.Contract", "EptFuzz.Harness"]));

        string[] shipped = [.. Rules.Select(row => (string)row[0]), "harness/Cli/EptFuzz.Cli.csproj", "harness/LibFuzzer/EptFuzz.LibFuzzer.csproj", "harness/Benchmarks/EptFuzz.Benchmarks.csproj"];
        foreach (string project in shipped)
        {
            Assert.DoesNotContain("EptFuzz.TestSupport", ReferencesOf(project));
        }
    }

    [Fact]
    public void Implementation_NeverReferencesTheReferenceModel()
    {
        // A shared bit decoder would make both wrong the same way and hide the bug.
        var impl = Assembly.Load("EptFuzz.Impl");
        Assert.DoesNotContain(impl.GetReferencedAssemblies(), a => a.Name == "EptFuzz.Reference");
        Assert.DoesNotContain(impl.GetReferencedAssemblies(), a => a.Name == "EptFuzz.Targets.Model");
    }

    private static List<string> ReferencesOf(string projectPath) =>
        [.. XDocument.Load(Path.Combine(RepositoryRoot.Path, projectPath)).Descendants()
            .Where(e => e.Name.LocalName is "ProjectReference" or "PackageReference" or "Reference")
            .Select(e => Path.GetFileNameWithoutExtension((string?)e.Attribute("Include") ?? string.Empty))];

    private static bool IsPlatform(string name) =>
        name is "netstandard" or "mscorlib" || name.StartsWith("System", StringComparison.Ordinal) || name.StartsWith("Microsoft.", StringComparison.Ordinal);
}
