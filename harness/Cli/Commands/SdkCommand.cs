using System.CommandLine;
using System.Reflection;
using EptFuzz.Harness.Running;
using EptFuzz.Targets.External.Protocol;

namespace EptFuzz.Cli.Commands;

/// <summary>
/// <c>eptfuzz sdk c|rust DIR</c>: writes the SDK sources that speak this tool's protocol version
/// into the user's tree, so an adapter is always built against the matching SDK. The sources are
/// embedded in the tool (no repository checkout needed).
/// </summary>
internal static class SdkCommand
{
    private const string Prefix = "sdk/";

    public static Command Create()
    {
        var language = new Argument<string>("language") { Description = "c or rust" };
        var directory = new Argument<string>("dir") { Description = "Where to write the SDK (created if missing)" };
        var force = new Option<bool>("--force") { Description = "Overwrite files that differ" };
        var command = new Command("sdk", $"Write the target SDK (protocol version {ProtocolVersion.Current}) for C or Rust into a directory") { language, directory, force };
        command.SetAction(parse => Run(parse.GetValue(language)!, parse.GetValue(directory)!, parse.GetValue(force)));
        return command;
    }

    /// <summary>The embedded files of one language: resource name and the relative path to write.</summary>
    internal static IReadOnlyList<(string Resource, string RelativePath)> Files(string language)
    {
        string prefix = $"{Prefix}{language}/";
        return typeof(SdkCommand).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(prefix, StringComparison.Ordinal) || n == Prefix + "PROTOCOL.md")
            .Select(n => (n, n == Prefix + "PROTOCOL.md" ? "PROTOCOL.md" : n[prefix.Length..]))
            .Order()
            .ToList();
    }

    private static int Run(string language, string directory, bool force)
    {
        if (language is not ("c" or "rust"))
        {
            return Shared.Usage($"sdk: unknown language '{language}'; write c or rust");
        }

        var files = Files(language);
        if (files.All(f => f.RelativePath == "PROTOCOL.md"))
        {
            Console.Error.WriteLine($"eptfuzz: this build carries no {language} SDK");
            return ExitCodes.Infrastructure;
        }

        var assembly = Assembly.GetExecutingAssembly();
        var plan = new List<(string Path, byte[] Bytes)>();
        foreach (var (resource, relative) in files)
        {
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            string path = Path.Combine(directory, relative);
            if (!force && File.Exists(path) && !File.ReadAllBytes(path).AsSpan().SequenceEqual(copy.ToArray()))
            {
                return Shared.Usage($"sdk: {path} exists and differs from the SDK of protocol version {ProtocolVersion.Current}; pass --force to overwrite it");
            }

            plan.Add((path, copy.ToArray()));
        }

        foreach (var (path, bytes) in plan)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            File.WriteAllBytes(path, bytes);
            Console.WriteLine($"wrote {path}");
        }

        Console.WriteLine($"the {language} SDK for target protocol version {ProtocolVersion.Current}: see PROTOCOL.md and README.md's \"Test your own EPT code\"");
        return ExitCodes.Ok;
    }
}
