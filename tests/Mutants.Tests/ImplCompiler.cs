using System.Collections.Immutable;
using System.Reflection;
using System.Text;
using EptFuzz.Contract;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Text;

namespace EptFuzz.Mutants.Tests;

/// <summary>
/// Compiles targets/Impl from source with Roslyn, unpatched (the control) or with one
/// <see cref="Mutant"/> applied, into an assembly named EptFuzz.Impl that references the
/// EptFuzz.Contract assembly this process already loaded, so that the contract interfaces of the
/// compiled hypervisor are the ones the harness speaks.
/// </summary>
public sealed class ImplCompiler
{
    private const string AssemblyName = "EptFuzz.Impl";

    // What ImplicitUsings gives a Microsoft.NET.Sdk project (Directory.Build.props turns it on).
    private const string GlobalUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;

        // The version an SDK build stamps (Version 1.0.0): the entry point and the CLI, which a
        // test runs with a compiled implementation in place of theirs, reference that version.
        [assembly: System.Reflection.AssemblyVersion("1.0.0.0")]
        """;

    private static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

    private static readonly CSharpCompilationOptions CompilationOptions = new(
        OutputKind.DynamicallyLinkedLibrary,
        optimizationLevel: OptimizationLevel.Release,
        nullableContextOptions: NullableContextOptions.Enable,
        deterministic: true,
        concurrentBuild: false);

    private static readonly Lazy<ImmutableArray<MetadataReference>> References = new(LoadReferences);

    private readonly Dictionary<string, string> sources;
    private readonly Dictionary<string, SyntaxTree> trees;

    private ImplCompiler(Dictionary<string, string> sources)
    {
        this.sources = sources;
        trees = sources.ToDictionary(s => s.Key, s => Parse(s.Value, s.Key), StringComparer.Ordinal);
    }

    /// <summary>Reads every targets/Impl/**/*.cs of this checkout (build outputs excluded).</summary>
    public static ImplCompiler FromRepository()
    {
        string root = Path.Combine(RepositoryRoot.Path, "targets", "Impl");
        var sources = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string path in Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            string relative = Path.GetRelativePath(root, path).Replace('\\', '/');
            if (relative.StartsWith("obj/", StringComparison.Ordinal) || relative.StartsWith("bin/", StringComparison.Ordinal))
            {
                continue;
            }

            sources[relative] = File.ReadAllText(path);
        }

        return new ImplCompiler(sources);
    }

    /// <summary>The implementation's source files, by path relative to targets/Impl.</summary>
    public IReadOnlyDictionary<string, string> Sources => sources;

    /// <summary>How many times <see cref="Mutant.Find"/> occurs in its file (0 when the file is missing).</summary>
    public int Occurrences(Mutant mutant)
    {
        ArgumentNullException.ThrowIfNull(mutant);
        if (!sources.TryGetValue(mutant.File, out string? text) || mutant.Find.Length == 0)
        {
            return 0;
        }

        int count = 0;
        for (int at = text.IndexOf(mutant.Find, StringComparison.Ordinal); at >= 0; at = text.IndexOf(mutant.Find, at + 1, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    /// <summary>The patched text of the mutant's file; throws when the patch does not apply exactly once.</summary>
    public string Patch(Mutant mutant)
    {
        ArgumentNullException.ThrowIfNull(mutant);
        int occurrences = Occurrences(mutant);
        if (occurrences != 1)
        {
            throw new InvalidOperationException($"mutant {mutant.Name}: its find text occurs {occurrences} times in targets/Impl/{mutant.File}; it must occur exactly once");
        }

        return sources[mutant.File].Replace(mutant.Find, mutant.Replace, StringComparison.Ordinal);
    }

    /// <summary>Compiles the implementation (with <paramref name="mutant"/> applied, or unpatched when null) and loads it.</summary>
    public CompiledImpl Compile(Mutant? mutant)
    {
        using var image = new MemoryStream(Emit(mutant));
        return CompiledImpl.Load(mutant?.Name ?? "control", image);
    }

    /// <summary>The compiled EptFuzz.Impl.dll (with <paramref name="mutant"/> applied, or unpatched when null), for a process of its own.</summary>
    public byte[] Emit(Mutant? mutant)
    {
        var trees = new Dictionary<string, SyntaxTree>(this.trees, StringComparer.Ordinal);
        if (mutant is not null)
        {
            trees[mutant.File] = Parse(Patch(mutant), mutant.File);
        }

        var compilation = CSharpCompilation.Create(
            AssemblyName,
            [Parse(GlobalUsings, "GlobalUsings.g.cs"), .. trees.Values],
            References.Value,
            CompilationOptions);
        using var image = new MemoryStream();
        var emitted = compilation.Emit(image);
        if (!emitted.Success)
        {
            var errors = new StringBuilder();
            foreach (Diagnostic d in emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Take(10))
            {
                errors.AppendLine(d.ToString());
            }

            throw new InvalidOperationException($"{mutant?.Name ?? "the unpatched implementation"} does not compile:{Environment.NewLine}{errors}");
        }

        return image.ToArray();
    }

    private static SyntaxTree Parse(string text, string path) =>
        CSharpSyntaxTree.ParseText(SourceText.From(text, Encoding.UTF8), ParseOptions, path);

    /// <summary>The platform's trusted assemblies (the BCL this process runs on) plus the loaded contract assembly.</summary>
    private static ImmutableArray<MetadataReference> LoadReferences()
    {
        Assembly contract = typeof(IEptHypervisor).Assembly;
        string contractName = contract.GetName().Name!;
        string platform = AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") as string
            ?? throw new InvalidOperationException("the runtime lists no TRUSTED_PLATFORM_ASSEMBLIES");
        var references = ImmutableArray.CreateBuilder<MetadataReference>();
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (string path in platform.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string name = Path.GetFileNameWithoutExtension(path);
            // Only the framework: the test's own dependencies (the contract among them) must not be referenced twice.
            bool framework = name is "mscorlib" or "netstandard" || name.StartsWith("System", StringComparison.Ordinal) || name.StartsWith("Microsoft.Win32", StringComparison.Ordinal) || name == "Microsoft.CSharp";
            if (framework && name != contractName && seen.Add(name))
            {
                references.Add(MetadataReference.CreateFromFile(path));
            }
        }

        references.Add(MetadataReference.CreateFromFile(contract.Location));
        return references.ToImmutable();
    }
}
